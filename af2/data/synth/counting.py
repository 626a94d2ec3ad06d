"""Counting questions at three difficulty levels.

* easy: 1-5 identical beeps, well separated, quiet background;
* medium: beeps at two pitches (>= 1 octave apart); count the higher or the lower one;
* hard: count one kind of short event among other kinds, random loudness, closer
  spacing, louder background.
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import COUNTING
from af2.data.synth import events as ev
from af2.data.synth.catalog import SHORT_LABELS, make_event, plural
from af2.data.synth.scene import Clip, Scene, number_options, qa


def _easy(rng: np.random.Generator) -> Clip:
    n = int(rng.integers(1, 6))
    freq = rng.uniform(500, 2000)
    scene = Scene(rng)
    scene.sequence(
        [("beep", ev.beep(freq, rng.uniform(0.2, 0.4)), 0.5)] * n, start=rng.uniform(0.3, 1.0), gaps=(0.4, 0.8)
    )
    q = qa(COUNTING, "counting.easy", "How many beeps do you hear?", str(n), rng, number_options(n, 1))
    return scene.clip([q])


def _medium(rng: np.random.Generator) -> Clip:
    n_target, n_other = int(rng.integers(2, 9)), int(rng.integers(1, 5))
    low = rng.uniform(400, 700)
    high = low * rng.uniform(2.0, 3.0)
    target_high = bool(rng.integers(2))
    f_target, f_other = (high, low) if target_high else (low, high)
    kinds = [True] * n_target + [False] * n_other
    order = [kinds[k] for k in rng.permutation(len(kinds))]
    scene = Scene(rng, noise_level=0.006)
    scene.sequence(
        [("beep", ev.beep(f_target if t else f_other, rng.uniform(0.2, 0.4)), 0.5) for t in order],
        start=rng.uniform(0.3, 1.0),
        gaps=(0.3, 0.6),
    )
    which = "higher" if target_high else "lower"
    q = qa(
        COUNTING,
        "counting.medium",
        f"There are beeps at two pitches. How many times does the {which}-pitched beep sound?",
        str(n_target),
        rng,
        number_options(n_target, 1),
    )
    return scene.clip([q])


def _hard(rng: np.random.Generator) -> Clip:
    target = str(rng.choice(SHORT_LABELS))
    others = [lab for lab in SHORT_LABELS if lab != target]
    n_target = int(rng.integers(3, 11))
    labels = [target] * n_target + [str(rng.choice(others)) for _ in range(int(rng.integers(2, 6)))]
    labels = [labels[k] for k in rng.permutation(len(labels))]
    scene = Scene(rng, noise_level=0.012, noise_kind="white")
    scene.sequence(
        [
            (lab, make_event(lab, rng), rng.uniform(0.7, 0.95) if lab == "click" else rng.uniform(0.25, 0.6))
            for lab in labels
        ],
        start=rng.uniform(0.2, 0.6),
        gaps=(0.3, 0.5),
    )
    q = qa(
        COUNTING,
        "counting.hard",
        f"How many {plural(target)} are there in this recording?",
        str(n_target),
        rng,
        number_options(n_target, 1),
    )
    return scene.clip([q])


LEVELS = {"easy": _easy, "medium": _medium, "hard": _hard}


def make(rng: np.random.Generator, ctx) -> Clip:
    level = ("easy", "medium", "hard")[int(rng.integers(3))]
    return LEVELS[level](rng)
