"""Synthetic clips carry a caption (AF-CLAP's positives): their events in time order, repeats
merged and counted, attribute pairs named by what differs. Checked against the questions'
exact answers, which the generators derive independently of the caption."""

from __future__ import annotations

import re

import numpy as np
import pytest

from af2.data.synth import attributes, counting, temporal
from af2.data.synth.generate import SynthContext
from af2.data.synth.scene import NUMBER_WORDS, Placed, caption
from af2.data.synth.speech import speech_engine

CTX = SynthContext(speech=speech_engine("formant"))


def test_caption_orders_merges_and_counts():
    ev = [
        Placed("siren", 3.0, 4.0, 0.5),
        Placed("beep", 0.5, 0.8, 0.5),
        Placed("beep", 1.0, 1.3, 0.5),
        Placed("alarm", 2.0, 2.5, 0.5),
        Placed("speech", 5.0, 5.4, 0.5),
        Placed("footsteps", 6.0, 7.0, 0.5),
    ]
    assert caption(ev) == "two beeps, then an alarm, then a siren, then a spoken word, then footsteps"
    assert caption([Placed("click", k, k + 0.1, 0.5) for k in range(12)]) == "12 clicks"
    assert caption([]) == "background noise"


@pytest.mark.parametrize("seed", range(12))
def test_captions_agree_with_the_answers(seed):
    rng = lambda k: np.random.default_rng([seed, 7, k])  # noqa: E731
    clip = counting._easy(rng(0))
    n = int(clip.questions[0].answer)
    assert clip.meta["caption"] == ("a beep" if n == 1 else f"{NUMBER_WORDS[n] if n <= 10 else n} beeps")

    for k in range(6):  # every question of several clips: each temporal answer type is met
        clip = temporal.make(rng(10 + k), CTX)
        names = [part.split(" ", 1)[1] for part in clip.meta["caption"].split(", then ")]
        for q in clip.questions:
            kind = q.qtype.split(".")[1]
            if kind in ("after", "before"):
                x = re.search(rf"right {kind} the (.+)\?", q.prompt).group(1)
                step = 1 if kind == "after" else -1
                assert q.answer == f"{kind} {names[names.index(x) + step]}"
            elif kind == "first_of_two":
                x, y = re.search(r"first, the (.+?) or the (.+?)\?", q.prompt).groups()
                assert q.answer == "first " + min((x, y), key=names.index)
            elif kind in ("first", "last"):
                assert q.answer == f"{kind} {names[0 if kind == 'first' else -1]}"
            if q.choices:
                assert q.answer in q.choices and all(c.startswith(q.answer.split()[0] + " ") for c in q.choices)

    clip = attributes.make(rng(2), CTX)
    q = clip.questions[0]
    if q.qtype in ("attribute.louder", "attribute.higher", "attribute.longer"):
        first, second = clip.meta["caption"].split(", then ")
        word = {"attribute.louder": "loud", "attribute.higher": "high", "attribute.longer": "long"}[q.qtype]
        assert (first.split()[1] == word) == (q.answer == "the first")
        assert (second.split()[1] == word) == (q.answer == "the second")
