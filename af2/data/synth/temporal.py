"""Temporal reasoning and grounding over a sequence of 3-5 distinct events.

Each clip gets :data:`QUESTIONS_PER_CLIP` questions of distinct types: ``temporal.first`` /
``temporal.last`` (which sound opens / closes the sequence; both asked of every clip,
:data:`ALWAYS_ASKED`) and one of ``temporal.after`` (what comes right after X),
``temporal.before``, ``temporal.first_of_two`` (which of X and Y comes first),
``temporal.onset`` (when does X start; answer to 0.1 s). Every onset lies within 25 ms of a
multiple of 0.1 s (:func:`clear_of_rounding_ties`), so the answer is never a rounding tie (x.x5 s)
that an onset measured a few ms off would round the other way.

Answers about which sound (every type but onset) name the relation asked about, then the sound:
"first doorbell", "last beep", "after siren" (the sound right after the one named in the
question), "before alarm"; the options of a multiple-choice question are written the same way.
A model reading the answer then has the question's key word right before the sound's name, so
even a small language model (the demo's tiny, frozen, random one) conditions on the question;
with the bare name ("the doorbell") the tiny model stayed at chance on which-is-first/last
(measured with a probe: 0.27 vs 0.26 after 900 steps; 0.59 with this format, options included).
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import TEMPORAL_REASONING
from af2.data.synth.catalog import SEQUENCE_LABELS, make_event
from af2.data.synth.scene import Clip, Scene, qa

QTYPES = ("after", "before", "first_of_two", "first", "last", "onset")
TIE_MARGIN = 0.025  # seconds: the least distance of an onset from a rounding tie (x.x5 s)
#: Questions asked about each clip, of distinct types: the same events are asked about in several
#: ways, so a model must read the question (which sound opens, closes, follows X...) and cannot
#: learn one answer per clip.
QUESTIONS_PER_CLIP = 3
#: Asked of every clip: which sound opens and which closes the sequence, about the same events, so
#: the answer depends on the question word alone (the rest: drawn from the other types).
ALWAYS_ASKED = ("first", "last")


def clear_of_rounding_ties(t: float) -> float:
    """``t`` pulled halfway towards the nearest multiple of 0.1 s: within 25 ms of it, so at
    least ``TIE_MARGIN`` from x.x5 s; deterministic (no random draw) and order-preserving."""
    grid = round(t * 10) / 10
    return grid + (t - grid) / 2


def make(rng: np.random.Generator, ctx) -> Clip:
    k = int(rng.integers(3, 6))
    labels = [SEQUENCE_LABELS[j] for j in rng.permutation(len(SEQUENCE_LABELS))[:k]]
    scene = Scene(rng)
    placed = scene.sequence(
        [(lab, make_event(lab, rng), rng.uniform(0.4, 0.6)) for lab in labels],
        start=rng.uniform(0.3, 1.5),
        gaps=(0.5, 1.2),
        align=clear_of_rounding_ties,
    )
    others = [q for q in QTYPES if q not in ALWAYS_ASKED]
    drawn = rng.permutation(len(others))[: QUESTIONS_PER_CLIP - len(ALWAYS_ASKED)]
    qtypes = [*ALWAYS_ASKED, *(others[j] for j in drawn)]
    return scene.clip([_question(qtype, labels, placed, rng) for qtype in qtypes])


def _question(qtype: str, labels: list[str], placed, rng: np.random.Generator):
    """One ``temporal.<qtype>`` question about the events ``labels`` (in order of onset)."""
    k = len(labels)
    names = [f"the {lab}" for lab in labels]  # as the questions say them
    said = lambda key, idx: [f"{key} {labels[j]}" for j in idx]  # answers and options
    if qtype == "after":
        i = int(rng.integers(k - 1))
        return qa(
            TEMPORAL_REASONING,
            "temporal.after",
            f"Which sound comes right after {names[i]}?",
            said("after", [i + 1])[0],
            rng,
            said("after", [j for j in range(k) if j != i]),
        )
    if qtype == "before":
        i = int(rng.integers(1, k))
        return qa(
            TEMPORAL_REASONING,
            "temporal.before",
            f"Which sound comes right before {names[i]}?",
            said("before", [i - 1])[0],
            rng,
            said("before", [j for j in range(k) if j != i]),
        )
    if qtype == "first_of_two":
        i, j = sorted(rng.choice(k, 2, replace=False))
        pair = [i, j] if rng.integers(2) else [j, i]
        return qa(
            TEMPORAL_REASONING,
            "temporal.first_of_two",
            f"Which is heard first, {names[pair[0]]} or {names[pair[1]]}?",
            said("first", [i])[0],
            rng,
            said("first", pair),
        )
    if qtype in ("first", "last"):
        i = 0 if qtype == "first" else k - 1
        return qa(
            TEMPORAL_REASONING,
            f"temporal.{qtype}",
            f"Which sound is heard {qtype}?",
            said(qtype, [i])[0],
            rng,
            said(qtype, range(k)),
        )
    i = int(rng.integers(k))
    return qa(
        TEMPORAL_REASONING,
        "temporal.onset",
        f"When does {names[i]} start, in seconds from the beginning?",
        f"{placed[i].onset:.1f} seconds",
        rng,
    )
