"""Attribute identification: louder, higher, longer (first vs second sound), instrument.

Two sounds differ in exactly one attribute by a clear margin: >= 8 dB in loudness,
>= 3 semitones in pitch, >= 1.6x in duration.
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import ATTRIBUTE_IDENTIFICATION
from af2.data.synth import events as ev
from af2.data.synth.scene import Clip, Scene, qa

ORDINALS = ["the first", "the second"]


def _pair(rng, first: np.ndarray, second: np.ndarray, labels: tuple[str, str], gains=(0.5, 0.5)) -> Scene:
    """Two sounds one after the other; ``labels`` name them in the caption ("loud beep")."""
    scene = Scene(rng)
    scene.sequence(
        [(labels[0], first, gains[0]), (labels[1], second, gains[1])], start=rng.uniform(0.3, 1.0), gaps=(0.6, 1.0)
    )
    return scene


def make(rng: np.random.Generator, ctx) -> Clip:
    kind = ("louder", "higher", "longer", "instrument")[int(rng.integers(4))]
    winner = int(rng.integers(2))
    if kind == "louder":
        freq, dur = rng.uniform(400, 1500), rng.uniform(0.4, 0.8)
        loud = rng.uniform(0.6, 0.8)
        quiet = loud * 10 ** (-rng.uniform(8, 14) / 20)
        gains = (loud, quiet) if winner == 0 else (quiet, loud)
        labels = ("loud beep", "quiet beep") if winner == 0 else ("quiet beep", "loud beep")
        scene = _pair(rng, ev.beep(freq, dur), ev.beep(freq, dur), labels, gains)
        question = "Which sound is louder, the first or the second?"
    elif kind == "higher":
        inst = ev.INSTRUMENTS[int(rng.integers(len(ev.INSTRUMENTS)))]
        low = int(rng.integers(48, 66))
        high = low + int(rng.integers(3, 9))
        notes = (high, low) if winner == 0 else (low, high)
        labels = tuple(f"{'high' if m == high else 'low'} {inst} note" for m in notes)
        scene = _pair(rng, *(ev.instrument(inst, ev.midi_to_hz(m), 0.8, rng) for m in notes), labels)
        question = f"Two {inst} notes are played. Which note is higher in pitch, the first or the second?"
    elif kind == "longer":
        short = rng.uniform(0.3, 0.6)
        long_ = short * rng.uniform(1.6, 2.5)
        durs = (long_, short) if winner == 0 else (short, long_)
        labels = ("long noise burst", "short noise burst") if winner == 0 else ("short noise burst", "long noise burst")
        scene = _pair(rng, *(ev.noise_burst(d, rng) for d in durs), labels)
        question = "Which noise burst lasts longer, the first or the second?"
    else:
        inst = ev.INSTRUMENTS[int(rng.integers(len(ev.INSTRUMENTS)))]
        scene = Scene(rng)
        notes = rng.integers(48, 72, size=int(rng.integers(1, 4)))
        scene.sequence(
            [(f"{inst} note", ev.instrument(inst, ev.midi_to_hz(m), rng.uniform(0.6, 1.0), rng), 0.5) for m in notes],
            start=rng.uniform(0.3, 1.0),
            gaps=(0.3, 0.6),
        )
        q = qa(
            ATTRIBUTE_IDENTIFICATION,
            "attribute.instrument",
            "Which instrument is playing?",
            inst,
            rng,
            list(ev.INSTRUMENTS),
        )
        return scene.clip([q])
    q = qa(ATTRIBUTE_IDENTIFICATION, f"attribute.{kind}", question, ORDINALS[winner], rng, ORDINALS)
    return scene.clip([q])
