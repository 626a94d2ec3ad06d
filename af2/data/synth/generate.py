"""Write a synthetic AudioSkills set: 16-bit wavs, ``manifest.jsonl`` and ``metadata.json``.

Short clip ``i`` covers skill ``SKILLS[i % 7]`` and is drawn from a generator seeded by
``(seed, 0, i)``; long scene ``j`` by ``(seed, 1, j)``: the same arguments give the same
files, byte for byte. Manifest records carry the usual fields plus ``qtype`` (the question
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
        rec = {"audio": rel, "prompt": q.prompt, "answer": q.answer, "skill": q.skill,
               "id": base_id if len(clip.questions) == 1 else f"{base_id}-q{k}", "choices": q.choices,
               "qtype": q.qtype, **clip.meta}
        out.append(rec)
    return out


def generate(out: str | Path, n: int, *, seed: int = 0, n_long: int | None = None,
             long_seconds: tuple[float, float] = (30.0, 300.0), speech: str = "auto", progress: bool = False) -> dict:
    """Generate ``n`` short questions (one per clip) and ``n_long`` long scenes (three
    questions each; default ``n // 50``) under ``out``; returns the metadata written."""
    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    n_long = n // 50 if n_long is None else n_long
    if n_long:
        (out / "long").mkdir(exist_ok=True)
    ctx = SynthContext(speech=speech_engine(speech))
    jobs = [("clips", i) for i in range(n)] + [("long", j) for j in range(n_long)]
    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc="synth", unit="clip")
    records: list[dict] = []
    for part, i in jobs:
        if part == "clips":
            skill = sk.SKILLS[i % len(sk.SKILLS)]
            clip = GENERATORS[skill](np.random.default_rng([seed, 0, i]), ctx)
            rel, base_id = f"clips/{i:06d}.wav", f"synth-{i:06d}"
        else:
            rng = np.random.default_rng([seed, 1, i])
            clip = make_long(rng, ctx, round(float(rng.uniform(*long_seconds)), 1))
            rel, base_id = f"long/{i:04d}.wav", f"long-{i:04d}"
        sf.write(out / rel, clip.audio, SR, subtype="PCM_16")
        records.extend(_records(clip, rel, base_id))
    write_manifest(out / "manifest.jsonl", records)
    counts = {s: sum(r["skill"] == s for r in records) for s in sk.SKILLS}
    meta = {"seed": seed, "n": n, "n_long": n_long, "long_seconds": list(long_seconds),
            "speech_engine": ctx.speech.name, "questions": len(records), "questions_per_skill": counts}
    if not ctx.speech.uses_words:
        meta["speech_note"] = FALLBACK_NOTE
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
