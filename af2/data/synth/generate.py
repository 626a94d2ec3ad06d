"""Write a synthetic AudioSkills set: 16-bit wavs, ``manifest.jsonl`` and ``metadata.json``.

Short clip ``i`` covers skill ``cycle[i % len(cycle)]`` (the 7 skills in turn, or each
repeated by its ``skill_weights`` entry) and is drawn from a generator seeded by
``(seed, 0, i)``; long scene ``j`` (its length log-uniform in ``long_seconds``) by
``(seed, 1, j)``: the same arguments give the same files, byte for byte, whatever the number
of ``workers``. Manifest records carry the usual fields plus ``qtype`` (the question
template), ``speech_engine`` on speech questions and ``long_audio`` on long scenes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from af2.data import skills as sk
from af2.data.manifest import write_manifest
from af2.data.synth import attributes, context, counting, general, info, temporal
from af2.data.synth.events import SR
from af2.data.synth.long_scenes import make_long
from af2.data.synth.scene import Clip
from af2.data.synth.speech import FALLBACK_NOTE, speech_engine

GENERATORS = {
    sk.TEMPORAL_REASONING: temporal.make,
    sk.ATTRIBUTE_IDENTIFICATION: attributes.make,
    sk.COUNTING: counting.make,
    sk.CONTEXTUAL_SOUND_EVENT_REASONING: context.make_sound,
    sk.CONTEXTUAL_SPEECH_EVENT_REASONING: context.make_speech,
    sk.INFORMATION_EXTRACTION: info.make,
    sk.GENERAL_REASONING: general.make,
}


@dataclass
class SynthContext:
    """What generators share: the speech engine."""

    speech: object


def _records(clip: Clip, rel: str, base_id: str) -> list[dict]:
    out = []
    for k, q in enumerate(clip.questions):
        rec = {
            "audio": rel,
            "prompt": q.prompt,
            "answer": q.answer,
            "skill": q.skill,
            "id": base_id if len(clip.questions) == 1 else f"{base_id}-q{k}",
            "choices": q.choices,
            "qtype": q.qtype,
            **clip.meta,
        }
        out.append(rec)
    return out


def skill_cycle(skill_weights: dict[str, int] | None = None) -> list[str]:
    """The order in which short clips take their skills: each skill of ``af2.data.skills.SKILLS``
    repeated ``skill_weights.get(skill, 1)`` times (0 leaves it out), interleaved round-robin."""
    weights = {s: 1 for s in sk.SKILLS}
    for name, w in (skill_weights or {}).items():
        if name not in weights:
            raise ValueError(f"skill_weights: unknown skill {name!r}; expected one of {list(sk.SKILLS)}")
        if int(w) != w or w < 0:
            raise ValueError(f"skill_weights[{name!r}] must be a non-negative integer, got {w!r}")
        weights[name] = int(w)
    cycle = [s for r in range(max(weights.values())) for s in sk.SKILLS if weights[s] > r]
    if not cycle:
        raise ValueError("skill_weights: every weight is 0")
    return cycle


def long_scene_seconds(rng: np.random.Generator, low: float, high: float) -> float:
    """A long scene's length, drawn log-uniformly from [low, high] s (to 0.1 s): over 30 s - 5 min,
    as many scenes of 30-60 s as of 1-2 min, and a little more of 2-5 min."""
    if not 0 < low <= high:
        raise ValueError(f"long_seconds must be 0 < low <= high, got ({low}, {high})")
    return round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 1)


_WORKER: dict = {}


def _render(job: tuple) -> tuple[str, np.ndarray, list[dict]]:
    """One clip or long scene -> (relative path, audio, records); runs in a worker process too."""
    (part, i, skill), seed, long_seconds, speech = job
    ctx = _WORKER.get(speech)
    if ctx is None:
        ctx = _WORKER[speech] = SynthContext(speech=speech_engine(speech))
    if part == "clips":
        clip = GENERATORS[skill](np.random.default_rng([seed, 0, i]), ctx)
        rel, base_id = f"clips/{i:06d}.wav", f"synth-{i:06d}"
    else:
        rng = np.random.default_rng([seed, 1, i])
        clip = make_long(rng, ctx, long_scene_seconds(rng, *long_seconds))
        rel, base_id = f"long/{i:04d}.wav", f"long-{i:04d}"
    return rel, clip.audio, _records(clip, rel, base_id)


def generate(
    out: str | Path,
    n: int,
    *,
    seed: int = 0,
    n_long: int | None = None,
    long_seconds: tuple[float, float] = (30.0, 300.0),
    speech: str = "auto",
    progress: bool = False,
    skill_weights: dict[str, int] | None = None,
    workers: int = 1,
) -> dict:
    """Generate ``n`` short clips (one question each, temporal-order clips
    :data:`af2.data.synth.temporal.QUESTIONS_PER_CLIP`) and ``n_long`` long scenes (four
    multiple-choice questions each, :mod:`af2.data.synth.long_scenes`; default ``n // 50``)
    under ``out``; returns the metadata written.

    ``skill_weights``: {skill: integer weight} for the share of short clips per skill
    (default 1 each; see :func:`skill_cycle`). ``workers`` > 1 renders clips in that many
    processes; the files are the same as with one."""
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    n_long = n // 50 if n_long is None else n_long
    if n_long:
        (out / "long").mkdir(exist_ok=True)
    cycle = skill_cycle(skill_weights)
    engine = speech_engine(speech)  # resolved once here, so every worker uses the same engine
    speech = "espeak" if engine.uses_words else "formant"
    jobs = [(("clips", i, cycle[i % len(cycle)]), seed, long_seconds, speech) for i in range(n)]
    jobs += [(("long", j, None), seed, long_seconds, speech) for j in range(n_long)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synth", unit="clip")
    records: list[dict] = []
    pool = None
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        rendered = pool.imap(_render, jobs, chunksize=8)
    else:
        rendered = map(_render, jobs)
    try:
        for rel, audio, recs in rendered:
            sf.write(out / rel, audio, SR, subtype="PCM_16")
            records.extend(recs)
            if bar is not None:
                bar.update()
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    write_manifest(out / "manifest.jsonl", records)
    counts = {s: sum(r["skill"] == s for r in records) for s in sk.SKILLS}
    meta = {
        "seed": seed,
        "n": n,
        "n_long": n_long,
        "long_seconds": list(long_seconds),
        "speech_engine": engine.name,
        "questions": len(records),
        "questions_per_skill": counts,
    }
    if skill_weights:
        meta["skill_weights"] = {s: cycle.count(s) for s in sk.SKILLS}
    if not engine.uses_words:
        meta["speech_note"] = FALLBACK_NOTE
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
