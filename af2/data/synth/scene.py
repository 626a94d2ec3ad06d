"""Scenes (events placed on a timeline over background noise) and question records.

A generator builds a :class:`Scene`, places events with :meth:`Scene.add` or
:meth:`Scene.sequence`, and turns it into a :class:`Clip` with :meth:`Scene.clip`: the rendered
waveform, its :class:`QA` records and a ``caption`` that lists the events in order (AF-CLAP's
contrastive stage trains on it: "a doorbell, then two beeps, then a siren"). Question records
carry the skill, a question-type tag, the text, the exact answer and, for multiple-choice
questions, the choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from af2.data import lexicon
from af2.data.synth.catalog import plural
from af2.data.synth.events import SR, background
from af2.text.prompts import with_choices

MC_PROBABILITY = 0.5
#: Caption words for event labels that do not read as nouns on their own.
CAPTION_NOUNS = {"speech": "spoken word", "drum": "drum hit"}
NUMBER_WORDS = lexicon.NUMBER_WORDS[:11]  # captions spell counts up to ten


def _noun(label: str, count: int) -> str:
    """'a beep', 'an alarm', 'three beeps', 'two noise bursts', '12 clicks' (labels ending in
    's', such as 'footsteps', stay as they are)."""
    label = CAPTION_NOUNS.get(label, label)
    word = NUMBER_WORDS[count] if count <= 10 else str(count)
    if label.endswith("s"):
        return label if count == 1 else f"{word} bursts of {label}"
    if count == 1:
        return ("an " if label[0] in "aeiou" else "a ") + label
    return f"{word} {plural(label)}"


def caption(events: Sequence["Placed"]) -> str:
    """The events in onset order, runs of one label merged: 'a doorbell, then two beeps'."""
    runs: list[list] = []
    for e in sorted(events, key=lambda e: e.onset):
        if runs and runs[-1][0] == e.label:
            runs[-1][1] += 1
        else:
            runs.append([e.label, 1])
    return ", then ".join(_noun(label, k) for label, k in runs) if runs else "background noise"


@dataclass
class Placed:
    """An event on the timeline: label, onset/offset (s) and peak gain."""

    label: str
    onset: float
    offset: float
    gain: float


@dataclass
class QA:
    skill: str
    qtype: str
    prompt: str
    answer: str
    choices: list[str] | None = None


@dataclass
class Clip:
    """A rendered waveform ``(T,)`` float32 at 16 kHz and its questions."""

    audio: np.ndarray
    questions: list[QA]
    meta: dict = field(default_factory=dict)


class Scene:
    """A timeline of ``duration`` seconds (grown on demand) over stationary noise."""

    def __init__(self, rng: np.random.Generator, *, noise_level: float = 0.003, noise_kind: str = "pink"):
        self.rng = rng
        self.noise_level = noise_level
        self.noise_kind = noise_kind
        self.events: list[Placed] = []
        self._parts: list[tuple[int, np.ndarray]] = []

    def add(self, label: str, signal: np.ndarray, onset: float, gain: float = 0.5) -> Placed:
        placed = Placed(label, round(onset, 4), round(onset + len(signal) / SR, 4), gain)
        self._parts.append((int(round(onset * SR)), signal * gain))
        self.events.append(placed)
        return placed

    @property
    def end(self) -> float:
        return max((e.offset for e in self.events), default=0.0)

    def sequence(
        self,
        items: Sequence[tuple[str, np.ndarray, float]],
        *,
        start: float,
        gaps: tuple[float, float],
        align: Callable[[float], float] | None = None,
    ) -> list[Placed]:
        """Place (label, signal, gain) items one after another with random gaps; ``align`` maps
        each drawn onset to the one used (it must not move an onset earlier than ``gaps`` allow)."""
        t, out = start, []
        for label, sig, gain in items:
            out.append(self.add(label, sig, align(t) if align else t, gain))
            t = out[-1].offset + self.rng.uniform(*gaps)
        return out

    def caption(self) -> str:
        """:func:`caption` of this scene's events."""
        return caption(self.events)

    def clip(self, questions: Sequence["QA"], meta: dict | None = None, **render: float) -> "Clip":
        """The rendered scene (``render`` kwargs go to :meth:`render`) with its questions, and
        ``meta`` plus the scene's ``caption``."""
        return Clip(self.render(**render), list(questions), {"caption": self.caption(), **(meta or {})})

    def render(self, *, tail: float = 0.5, min_duration: float = 0.0) -> np.ndarray:
        n = int(round(max(self.end + tail, min_duration) * SR))
        x = background(n, self.rng, self.noise_level, self.noise_kind).astype(np.float64)
        for pos, sig in self._parts:
            x[pos : pos + len(sig)] += sig[: n - pos]
        peak = np.max(np.abs(x))
        if peak > 0.99:
            x *= 0.99 / peak
        return x.astype(np.float32)


def qa(
    skill: str,
    qtype: str,
    question: str,
    answer: str,
    rng: np.random.Generator,
    options: Sequence[str] | None = None,
    n_choices: int = 4,
    *,
    mc_probability: float = MC_PROBABILITY,
) -> QA:
    """A question, open-ended or (with ``mc_probability``, half the time by default, when
    ``options`` are given) multiple choice.

    Multiple choice lists ``answer`` among up to ``n_choices - 1`` other options, shuffled,
    in the prompt (:func:`af2.text.prompts.with_choices`, as the collator does for any
    manifest line with ``choices``); the answer stays the choice's text.
    """
    others = [o for o in dict.fromkeys(options or []) if o != answer]
    if not others or rng.random() >= mc_probability:
        return QA(skill, qtype, question, answer)
    picked = [others[k] for k in rng.permutation(len(others))[: n_choices - 1]]
    choices = [answer, *picked]
    choices = [choices[k] for k in rng.permutation(len(choices))]
    return QA(skill, qtype, with_choices(question, choices), answer, choices)


def number_options(answer: int, low: int = 0, high: int = 20) -> list[str]:
    """Nearby numbers as multiple-choice distractors."""
    return [str(v) for v in range(max(low, answer - 3), min(high, answer + 3) + 1)]
