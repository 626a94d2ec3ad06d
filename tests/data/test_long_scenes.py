"""Long scenes (af2.data.synth.long_scenes): lengths over 30 s - 5 min, four multiple-choice
questions about the whole recording, landmarks far apart (the answers themselves are checked
against the audio in test_synth_verified.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from af2.data.synth import long_scenes as ls
from af2.data.synth.generate import long_scene_seconds


def test_lengths_are_log_uniform_over_the_range():
    rng = np.random.default_rng(0)
    seconds = np.array([long_scene_seconds(rng, 30.0, 300.0) for _ in range(3000)])
    assert seconds.min() >= 30.0 and seconds.max() <= 300.0
    shares = [np.mean((seconds >= lo) & (seconds < hi)) for lo, hi in ((30, 60), (60, 120), (120, 301))]
    assert shares == pytest.approx([np.log(2) / np.log(10)] * 2 + [np.log(2.5) / np.log(10)], abs=0.03)
    with pytest.raises(ValueError, match="long_seconds"):
        long_scene_seconds(rng, 60.0, 30.0)


@pytest.mark.parametrize("seconds", [30.0, 95.0, 300.0])
def test_four_multiple_choice_questions_about_far_apart_landmarks(seconds, monkeypatch):
    # no waveform is needed here: the placed events are recorded as the scene adds them
    monkeypatch.setattr(ls.Scene, "render", lambda self, **kw: np.zeros(int(kw["min_duration"] * 16000), np.float32))
    add = ls.Scene.add
    for seed in range(6):
        placed = []
        monkeypatch.setattr(ls.Scene, "add", _recording(add, placed))
        clip = ls.make_long(np.random.default_rng([seed, 1]), None, seconds)
        assert len(clip.audio) == int(seconds * 16000) and clip.meta["long_audio"] and clip.meta["duration"] == seconds
        assert [q.qtype for q in clip.questions] == list(ls.QTYPES)
        for q in clip.questions:
            assert q.choices and q.answer in q.choices and len(set(q.choices)) == len(q.choices)
            assert all(c in q.prompt for c in q.choices)
        marks = [(p.label, p.onset) for p in placed if p.label in ls.LANDMARKS]
        present = {label for label, _ in marks}
        assert len(present) == 3  # one of the four is absent
        assert clip.questions[0].answer == ls._summary(present)
        counted = re.search(r"is the (.+?) heard", clip.questions[1].prompt).group(1)
        assert clip.questions[1].answer == str(sum(label == counted for label, _ in marks))
        once = [(label, t) for label, t in marks if label != counted]
        assert len(once) == 2 and max(t for _, t in once) - min(t for _, t in once) >= 0.4 * seconds
        assert clip.questions[2].answer == "the " + min(once, key=lambda m: m[1])[0]
        at = int(re.search(r"about (\d+) seconds", clip.questions[3].prompt).group(1))
        nearest = sorted(marks, key=lambda m: abs(m[1] - at))
        assert clip.questions[3].answer == "the " + nearest[0][0]
        gap = max(ls.MIN_GAP_S, ls.LANDMARK_GAP * seconds)
        assert all(abs(t - at) >= gap - 0.5 for label, t in nearest[1:] if label != nearest[0][0])


def _recording(add, placed):
    def wrapped(self, *args, **kw):
        p = add(self, *args, **kw)
        placed.append(p)
        return p

    return wrapped
