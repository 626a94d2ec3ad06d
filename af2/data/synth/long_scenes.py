"""LongAudio-style scenes: 30 s to 5 min of events over background noise.

Each scene holds, among filler events (beeps, chirps, noise bursts every few seconds):
``k`` doorbells spread over the whole scene, a siren and a phone ring in opposite
thirds, and one alarm lasting a whole number of seconds in the middle third. Three
questions need the whole recording: counting across minutes (``long.count``), the order
of distant events (``long.order``) and a duration (``long.duration``).
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import COUNTING, INFORMATION_EXTRACTION, TEMPORAL_REASONING
from af2.data.synth.catalog import make_event
from af2.data.synth.events import SR
from af2.data.synth.scene import Clip, Scene, number_options, qa

FILLERS = ("beep", "rising chirp", "falling chirp", "noise burst")
CLEARANCE = 0.8  # seconds of quiet kept around every event


class _Timeline:
    def __init__(self, scene: Scene, rng: np.random.Generator, seconds: float):
        self.scene, self.rng, self.seconds = scene, rng, seconds
        self.busy: list[tuple[float, float]] = []

    def free(self, t0: float, t1: float) -> bool:
        return (
            t0 >= 0.3
            and t1 <= self.seconds - 0.3
            and all(t1 + CLEARANCE <= b0 or t0 >= b1 + CLEARANCE for b0, b1 in self.busy)
        )

    def place(self, label: str, sig: np.ndarray, lo: float, hi: float, gain: float = 0.5) -> float | None:
        """Put ``sig`` at a random free onset in [lo, hi); returns the onset or None."""
        dur = len(sig) / SR
        for _ in range(200):
            t = self.rng.uniform(lo, max(lo, hi - dur))
            if self.free(t, t + dur):
                self.scene.add(label, sig, t, gain)
                self.busy.append((t, t + dur))
                return t
        return None


def make_long(rng: np.random.Generator, ctx, seconds: float) -> Clip:
    seconds = float(seconds)
    scene = Scene(rng, noise_level=0.004)
    tl = _Timeline(scene, rng, seconds)
    alarm_s = int(rng.integers(3, int(min(15, seconds / 4)) + 1))
    tl.place("alarm", make_event("alarm", rng, float(alarm_s)), 0.4 * seconds, 0.6 * seconds)
    siren_first = bool(rng.integers(2))
    early, late = (0.03 * seconds, 0.3 * seconds), (0.7 * seconds, 0.97 * seconds)
    tl.place("siren", make_event("siren", rng), *(early if siren_first else late))
    tl.place("phone ring", make_event("phone ring", rng), *(late if siren_first else early))
    k = int(rng.integers(2, 7))
    bells = sum(
        tl.place("doorbell", make_event("doorbell", rng), j * seconds / k, (j + 1) * seconds / k) is not None
        for j in range(k)
    )
    t = rng.uniform(1.0, 4.0)
    while t < seconds:
        label = FILLERS[int(rng.integers(len(FILLERS)))]
        tl.place(label, make_event(label, rng), t, t + 3.0, rng.uniform(0.3, 0.6))
        t += rng.uniform(3.0, 8.0)
    first = "the siren" if siren_first else "the phone ring"
    questions = [
        qa(
            COUNTING,
            "long.count",
            "How many times does the doorbell ring in the whole recording?",
            str(bells),
            rng,
            number_options(bells, 1),
        ),
        qa(
            TEMPORAL_REASONING,
            "long.order",
            "Which is heard first, the siren or the phone ring?",
            first,
            rng,
            ["the siren", "the phone ring"],
        ),
        qa(
            INFORMATION_EXTRACTION,
            "long.duration",
            "How long does the alarm sound last, to the nearest second?",
            f"{alarm_s} seconds",
            rng,
            [f"{a} seconds" for a in range(max(1, alarm_s - 3), alarm_s + 4)],
        ),
    ]
    return Clip(
        scene.render(tail=0.0, min_duration=seconds)[: int(seconds * SR)],
        questions,
        {"long_audio": True, "duration": seconds, "caption": scene.caption()},
    )
