"""Information extraction: tempo in BPM, pitch name of a note, number of distinct sources."""

from __future__ import annotations

import numpy as np

from af2.data.skills import INFORMATION_EXTRACTION
from af2.data.synth import events as ev
from af2.data.synth.catalog import SEQUENCE_LABELS, make_event
from af2.data.synth.scene import Clip, Scene, number_options, qa


def _tempo(rng) -> Clip:
    bpm = int(rng.integers(12, 37)) * 5  # 60..180
    beats = int(rng.integers(8, 17))
    scene = Scene(rng)
    t0, period = rng.uniform(0.2, 0.8), 60.0 / bpm
    for k in range(beats):
        scene.add("drum", ev.drum(), t0 + k * period, 0.7)
    q = qa(
        INFORMATION_EXTRACTION,
        "info.tempo",
        "What is the tempo of the drum beat, in beats per minute?",
        f"{bpm} BPM",
        rng,
        [f"{b} BPM" for b in (bpm - 20, bpm - 10, bpm + 10, bpm + 20) if b > 0],
    )
    return scene.clip([q])


def _pitch(rng) -> Clip:
    midi = int(rng.integers(48, 75))
    inst = ev.INSTRUMENTS[int(rng.integers(len(ev.INSTRUMENTS)))]
    scene = Scene(rng)
    scene.add(inst, ev.instrument(inst, ev.midi_to_hz(midi), rng.uniform(0.8, 1.5), rng), rng.uniform(0.3, 1.0), 0.6)
    q = qa(
        INFORMATION_EXTRACTION,
        "info.pitch",
        f"What is the pitch of the {inst} note?",
        ev.note_name(midi),
        rng,
        [ev.note_name(m) for m in (midi - 2, midi - 1, midi + 1, midi + 2)],
    )
    return scene.clip([q])


def _sources(rng) -> Clip:
    k = int(rng.integers(1, 6))
    labels = [SEQUENCE_LABELS[j] for j in rng.permutation(len(SEQUENCE_LABELS))[:k]]
    seq = [lab for lab in labels for _ in range(int(rng.integers(1, 3)))]
    seq = [seq[j] for j in rng.permutation(len(seq))]
    scene = Scene(rng)
    scene.sequence([(lab, make_event(lab, rng), 0.5) for lab in seq], start=rng.uniform(0.3, 1.0), gaps=(0.5, 1.0))
    q = qa(
        INFORMATION_EXTRACTION,
        "info.sources",
        "How many distinct kinds of sound can be heard?",
        str(k),
        rng,
        number_options(k, 1, 8),
    )
    return scene.clip([q])


def make(rng: np.random.Generator, ctx) -> Clip:
    return (_tempo, _pitch, _sources)[int(rng.integers(3))](rng)
