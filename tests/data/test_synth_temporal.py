"""temporal.onset: answers never sit on a rounding tie; the generator stays deterministic by seed."""

from __future__ import annotations

import re

import numpy as np
import pytest

from af2.data.synth import temporal
from af2.data.synth.scene import Scene
from tests.data import analysis as A

SEEDS = range(80)


@pytest.fixture(scope="module")
def clips():
    """(seed, clip, {label: onset} of the placed events) for many temporal clips."""
    placed: dict[str, float] = {}
    original = Scene.add

    def spy(self, label, signal, onset, gain=0.5):
        out = original(self, label, signal, onset, gain)
        placed[label] = out.onset
        return out

    Scene.add = spy
    try:
        out = []
        for seed in SEEDS:
            placed.clear()
            clip = temporal.make(np.random.default_rng([7, seed]), None)
            out.append((seed, clip, dict(placed)))
    finally:
        Scene.add = original
    return out


def _tie_distance(t: float) -> float:
    """Seconds from t to the nearest x.x5 (where a 0.1-s answer flips)."""
    return abs((t * 10) % 1 - 0.5) / 10


def test_every_onset_is_clear_of_rounding_ties(clips):
    distances = [_tie_distance(t) for _, _, onsets in clips for t in onsets.values()]
    assert len(distances) > 3 * len(SEEDS)
    assert min(distances) >= temporal.TIE_MARGIN - 1e-4, min(distances)


def test_onset_answers_match_the_audio(clips):
    asked, errors = 0, []
    for seed, clip, onsets in clips:
        q = next((q for q in clip.questions if q.qtype == "temporal.onset"), None)
        if q is None:
            continue
        asked += 1
        true = onsets[re.search(r"When does the (.+?) start", q.prompt).group(1)]
        assert q.answer == f"{true:.1f} seconds"
        # measured from the audio alone (10-ms frames): close to the true onset, same 0.1-s answer
        measured = min((s[0] for s in A.segments(clip.audio.astype(np.float64))), key=lambda t: abs(t - true))
        errors.append(measured - true)
        assert f"{measured:.1f} seconds" == q.answer, (seed, measured, true)
    assert asked >= 10 and max(map(abs, errors)) < temporal.TIE_MARGIN, errors


def test_same_seed_same_clip_and_onsets(clips):
    seed, clip, onsets = clips[3]
    again = temporal.make(np.random.default_rng([7, seed]), None)
    assert np.array_equal(again.audio, clip.audio) and again.questions == clip.questions


def test_clear_of_rounding_ties():
    f = temporal.clear_of_rounding_ties
    assert f(1.2) == pytest.approx(1.2) and f(1.249) == pytest.approx(1.2245)
    assert f(1.251) == pytest.approx(1.2755)
    xs = np.linspace(0.0, 5.0, 5001)
    ys = [f(x) for x in xs]
    assert all(b >= a for a, b in zip(ys, ys[1:]))  # keeps the order of events
    assert max(abs(y - x) for x, y in zip(xs, ys)) <= temporal.TIE_MARGIN + 1e-9


def test_first_and_last_answers_are_the_sequence_ends(clips):
    """temporal.first / temporal.last: the answer is the earliest / latest placed event, found
    in the audio too (the classifier of tests/data/analysis.py labels the segments)."""
    asked = {"temporal.first": 0, "temporal.last": 0}
    for seed, clip, onsets in clips:
        heard = [A.classify(A.cut(clip.audio.astype(np.float64), s)) for s in A.segments(clip.audio.astype(np.float64))]
        order = sorted(onsets, key=onsets.get)
        for q in clip.questions:
            if q.qtype not in asked:
                continue
            asked[q.qtype] += 1
            key = q.qtype.split(".")[1]  # answers name the relation, then the sound: "first beep"
            assert q.answer == f"{key} " + (order[0] if key == "first" else order[-1])
            assert q.answer == f"{key} " + (heard[0] if key == "first" else heard[-1]), (seed, heard)
            assert q.choices is None or (q.answer in q.choices and len(q.choices) == min(4, len(onsets)))
    assert min(asked.values()) >= 5, asked


def test_each_clip_is_asked_several_distinct_question_types(clips):
    for seed, clip, _onsets in clips:
        kinds = [q.qtype for q in clip.questions]
        assert len(kinds) == temporal.QUESTIONS_PER_CLIP == len(set(kinds)), (seed, kinds)
        assert {"temporal.first", "temporal.last"} <= set(kinds), (seed, kinds)  # ALWAYS_ASKED
        assert all(k.removeprefix("temporal.") in temporal.QTYPES for k in kinds)
