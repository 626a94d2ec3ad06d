"""General reasoning: questions that combine counting, order and attributes.

``general.difference`` (how many more X than Y), ``general.most`` (which kind occurs most
often), ``general.compare_around`` (is the note after the alarm higher or lower than the
one before it).
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import GENERAL_REASONING
from af2.data.synth import events as ev
from af2.data.synth.catalog import SHORT_LABELS, make_event, plural
from af2.data.synth.scene import Clip, Scene, number_options, qa

KINDS = tuple(lab for lab in SHORT_LABELS if lab != "click")


def _shuffled_sequence(rng, counts: dict[str, int]) -> Scene:
    seq = [lab for lab, n in counts.items() for _ in range(n)]
    seq = [seq[j] for j in rng.permutation(len(seq))]
    scene = Scene(rng)
    scene.sequence([(lab, make_event(lab, rng), 0.5) for lab in seq], start=rng.uniform(0.3, 0.8), gaps=(0.35, 0.6))
    return scene


def _difference(rng) -> Clip:
    a, b = (KINDS[j] for j in rng.permutation(len(KINDS))[:2])
    nb = int(rng.integers(1, 5))
    na = nb + int(rng.integers(1, 5))
    scene = _shuffled_sequence(rng, {a: na, b: nb})
    q = qa(
        GENERAL_REASONING,
        "general.difference",
        f"How many more {plural(a)} than {plural(b)} are there?",
        str(na - nb),
        rng,
        number_options(na - nb, 1),
    )
    return scene.clip([q])


def _most(rng) -> Clip:
    counts = dict(zip(KINDS, (int(c) for c in rng.permutation(3) + 1)))  # distinct counts 1, 2, 3
    top = max(counts, key=counts.get)
    scene = _shuffled_sequence(rng, counts)
    q = qa(
        GENERAL_REASONING,
        "general.most",
        "Which kind of sound occurs most often?",
        f"the {top}",
        rng,
        [f"the {k}" for k in KINDS],
    )
    return scene.clip([q])


def _compare_around(rng) -> Clip:
    inst = ev.INSTRUMENTS[int(rng.integers(len(ev.INSTRUMENTS)))]
    before = int(rng.integers(50, 70))
    after = before + int(rng.choice([-1, 1])) * int(rng.integers(3, 8))
    scene = Scene(rng)
    scene.sequence(
        [
            (f"{inst} note", ev.instrument(inst, ev.midi_to_hz(before), 0.8, rng), 0.5),
            ("alarm", make_event("alarm", rng), 0.4),
            (f"{inst} note", ev.instrument(inst, ev.midi_to_hz(after), 0.8, rng), 0.5),
        ],
        start=rng.uniform(0.3, 0.8),
        gaps=(0.5, 0.9),
    )
    answer = "higher" if after > before else "lower"
    q = qa(
        GENERAL_REASONING,
        "general.compare_around",
        f"Is the {inst} note after the alarm higher or lower than the {inst} note before it?",
        answer,
        rng,
        ["higher", "lower"],
    )
    return scene.clip([q])


def make(rng: np.random.Generator, ctx) -> Clip:
    return (_difference, _most, _compare_around)[int(rng.integers(3))](rng)
