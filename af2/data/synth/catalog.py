"""Named sound events for questions: ``make_event(label, rng)`` draws one instance.

Labels are the words used in questions and answers ("the rising chirp", "the doorbell").
Each label's acoustic signature is documented in :mod:`af2.data.synth.events`.
"""

from __future__ import annotations

import numpy as np

from af2.data.synth import events as ev

# Events whose signatures are distinct enough to be told apart in sequences.
SEQUENCE_LABELS = ("beep", "rising chirp", "falling chirp", "noise burst", "alarm", "doorbell", "phone ring", "siren")
# Short events for counting and filler.
SHORT_LABELS = ("beep", "rising chirp", "noise burst", "click")
# Everyday events with a meaning, for contextual reasoning.
CONTEXT_LABELS = ("doorbell", "siren", "alarm", "phone ring", "footsteps")
SITUATIONS = {
    "doorbell": "someone is at the door",
    "siren": "an emergency vehicle is nearby",
    "alarm": "an alarm is going off to warn people",
    "phone ring": "a telephone is ringing with an incoming call",
    "footsteps": "someone is walking nearby",
}


def plural(label: str) -> str:
    return label + ("es" if label.endswith(("ch", "sh", "s")) else "s")


def make_event(label: str, rng: np.random.Generator, dur: float | None = None) -> np.ndarray:
    """One instance of ``label`` (random pitch/length within its definition)."""
    if label == "beep":
        return ev.beep(rng.uniform(500, 2000), dur or rng.uniform(0.3, 0.7))
    if label in ("rising chirp", "falling chirp"):
        f0, ratio = rng.uniform(300, 600), rng.uniform(2.5, 4.0)
        lo_hi = (f0, f0 * ratio) if label == "rising chirp" else (f0 * ratio, f0)
        return ev.chirp(*lo_hi, dur or rng.uniform(0.5, 1.0))
    if label == "noise burst":
        return ev.noise_burst(dur or rng.uniform(0.3, 0.7), rng)
    if label == "click":
        return ev.click(rng)
    if label == "alarm":
        return ev.alarm(dur or rng.choice([1.0, 1.5, 2.0]))
    if label == "doorbell":
        return ev.doorbell()
    if label == "phone ring":
        return ev.phone_ring(dur or 1.0)
    if label == "siren":
        return ev.siren(dur or rng.uniform(2.0, 3.0))
    if label == "footsteps":
        return ev.footsteps(int(rng.integers(4, 7)), rng)
    raise ValueError(f"unknown event label {label!r}")
