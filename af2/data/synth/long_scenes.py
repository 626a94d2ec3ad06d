"""LongAudio-style scenes: 30 s to 5 min of events over background noise.

Each scene holds, among filler events (beeps, chirps, noise bursts every few seconds), three of
the four :data:`LANDMARKS` placed far apart: one heard ``k`` times (1-5, one per ``1/k`` of the
scene), two heard once each in opposite ends of the scene (the first and the last 30%), and the
fourth absent. Every landmark keeps :data:`LANDMARK_GAP` of the scene (at least
:data:`MIN_GAP_S`) away from the once-heard ones, so "what is heard at about t" has one answer.
Four multiple-choice questions need the whole recording (:data:`QTYPES`):

``long.summary``  which sounds are heard besides the fillers (the three landmarks; each wrong
                  option swaps one of them for the absent one);
``long.count``    how many times the ``k``-times landmark is heard in the whole recording;
``long.order``    which of the two once-heard landmarks is heard first (minutes apart in a
                  5-min scene);
``long.near``     which landmark is heard at about a given second (one of the once-heard ones).
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import COUNTING, GENERAL_REASONING, INFORMATION_EXTRACTION, TEMPORAL_REASONING
from af2.data.synth.catalog import make_event
from af2.data.synth.events import SR
from af2.data.synth.scene import Clip, Scene, number_options, qa

FILLERS = ("beep", "rising chirp", "falling chirp", "noise burst")
LANDMARKS = ("doorbell", "siren", "alarm", "phone ring")
QTYPES = ("long.summary", "long.count", "long.order", "long.near")
CLEARANCE = 0.8  # seconds of quiet kept around every event
LANDMARK_GAP = 0.08  # least distance of any landmark from a once-heard one, as a share of the scene
MIN_GAP_S = 6.0
MAX_COUNT = 5


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

    def place(self, label: str, sig: np.ndarray, lo: float, hi: float, gain: float = 0.5, avoid=()) -> float | None:
        """Put ``sig`` at a random free onset in [lo, hi), its onset at least ``gap`` from every
        ``(onset, gap)`` of ``avoid``; returns the onset or None."""
        dur = len(sig) / SR
        for _ in range(200):
            t = self.rng.uniform(lo, max(lo, hi - dur))
            if self.free(t, t + dur) and all(abs(t - a) >= gap for a, gap in avoid):
                self.scene.add(label, sig, t, gain)
                self.busy.append((t, t + dur))
                return t
        return None


def _the(label: str) -> str:
    return f"the {label}"


def _summary(labels) -> str:
    names = sorted(labels)
    return ", ".join(_the(n) for n in names[:-1]) + f" and {_the(names[-1])}"


def make_long(rng: np.random.Generator, ctx, seconds: float) -> Clip:
    seconds = float(seconds)
    scene = Scene(rng, noise_level=0.004)
    tl = _Timeline(scene, rng, seconds)
    counted, early, late, absent = (LANDMARKS[j] for j in rng.permutation(len(LANDMARKS)))
    gap = max(MIN_GAP_S, LANDMARK_GAP * seconds)
    # the once-heard pair first (they always fit: the scene is empty), then the counted landmark
    onsets = {
        early: tl.place(early, make_event(early, rng), 0.03 * seconds, 0.3 * seconds),
        late: tl.place(late, make_event(late, rng), 0.7 * seconds, 0.97 * seconds),
    }
    k = int(rng.integers(1, MAX_COUNT + 1))
    avoid = [(t, gap) for t in onsets.values()]
    heard = sum(
        tl.place(counted, make_event(counted, rng), j * seconds / k, (j + 1) * seconds / k, avoid=avoid) is not None
        for j in range(k)
    )
    if not heard:  # every slot of a 1-time landmark collided: put it midway between the pair
        heard = int(tl.place(counted, make_event(counted, rng), 0.35 * seconds, 0.65 * seconds) is not None)
    t = rng.uniform(1.0, 4.0)
    while t < seconds:
        label = FILLERS[int(rng.integers(len(FILLERS)))]
        tl.place(label, make_event(label, rng), t, t + 3.0, rng.uniform(0.3, 0.6))
        t += rng.uniform(3.0, 8.0)
    present = [counted, early, late] if heard else [early, late]
    swapped = [_summary([absent if p == q else p for p in present]) for q in present]
    first, second = (early, late) if rng.integers(2) else (late, early)
    target = early if rng.integers(2) else late
    at = int(round(onsets[target]))
    questions = [
        qa(
            GENERAL_REASONING,
            "long.summary",
            "Which sounds are heard in the recording, besides short beeps, chirps and noise bursts?",
            _summary(present),
            rng,
            swapped,
            mc_probability=1.0,
        ),
        qa(
            COUNTING,
            "long.count",
            f"How many times is {_the(counted)} heard in the whole recording?",
            str(heard),
            rng,
            number_options(heard, 1, MAX_COUNT + 1),
            mc_probability=1.0,
        ),
        qa(
            TEMPORAL_REASONING,
            "long.order",
            f"Which is heard first, {_the(first)} or {_the(second)}?",
            _the(early),
            rng,
            [_the(first), _the(second)],
            mc_probability=1.0,
        ),
        qa(
            INFORMATION_EXTRACTION,
            "long.near",
            f"Which sound is heard about {at} seconds into the recording?",
            _the(target),
            rng,
            [_the(lab) for lab in LANDMARKS],
            mc_probability=1.0,
        ),
    ]
    return Clip(
        scene.render(tail=0.0, min_duration=seconds)[: int(seconds * SR)],
        questions,
        {"long_audio": True, "duration": seconds, "caption": scene.caption()},
    )
