"""Batched inference with a saved AF2 model: answers for audio + prompts, resumable.

``python -m af2 infer --model DIR --audio a.wav [b.wav ...] --prompt "..."`` prints one answer per
file; ``python -m af2 infer --model DIR --input manifest.jsonl --output preds.jsonl`` answers
every manifest line (its ``audio``, ``start``/``end`` and ``prompt``; options in ``choices`` are
appended as in training, "Choose one:" and one "(A) ..." line each, unless the prompt lists them) and appends ``{"id", "prediction", "prompt",
"audio"}`` lines to OUT, one per sample. Rerunning skips ids already in OUT. Files that cannot be
read are reported on stderr and in ``OUT.errors.jsonl`` and skipped; they never stop the run.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch
from tqdm import tqdm

from af2.data.audio import AudioError, read_audio
from af2.data.manifest import load_manifest
from af2.data.prompts import with_choices

log = logging.getLogger("af2.infer")


@dataclass
class Request:
    """One question: id, audio path, optional [start, end) seconds, prompt."""

    id: str
    audio: Path
    prompt: str
    start: Optional[float] = None
    end: Optional[float] = None


def prompt_with_choices(prompt: str, choices: Optional[Sequence[str]]) -> str:
    """The prompt as training shows it: options appended by :func:`af2.data.prompts.with_choices`."""
    return with_choices(prompt, choices)


def requests_from_manifest(path: Path) -> tuple[list[Request], list[str]]:
    """Requests of a manifest's good lines, and one message per bad line."""
    result = load_manifest(path)
    reqs = [Request(s.id, s.audio, prompt_with_choices(s.prompt, s.choices), s.start, s.end) for s in result.samples]
    return reqs, [f"{path}:{e.line}: {e.reason}" for e in result.errors]


def done_ids(output: Path) -> set[str]:
    """Ids already answered in OUT (a torn last line from a killed run is dropped)."""
    if not output.exists():
        return set()
    ids, good = set(), 0
    with open(output, "rb") as f:
        data = f.read()
    for line in data.splitlines(keepends=True):
        try:
            ids.add(json.loads(line)["id"])
            good += len(line)
        except (ValueError, KeyError):
            break
    if good < len(data):  # cut what a kill left half-written
        with open(output, "r+b") as f:
            f.truncate(good)
    return ids


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run(model, requests: Iterable[Request], *, output: Optional[Path], batch_size: int = 8,
        max_new_tokens: int = 64, max_windows: Optional[int] = None, progress: bool = True) -> dict:
    """Answer ``requests`` in batches. With ``output``, append each answer as a JSON line (and
    skip ids already there); return counts and, without ``output``, the answers by id."""
    requests = list(requests)
    skip = done_ids(output) if output else set()
    todo = [r for r in requests if r.id not in skip]
    errors_path = output.with_name(output.name + ".errors.jsonl") if output else None
    answers, failed = {}, 0
    bar = tqdm(total=len(todo), desc="infer", unit="q", disable=not progress)
    for i in range(0, len(todo), batch_size):
        batch, waves = [], []
        for r in todo[i:i + batch_size]:
            try:
                waves.append(read_audio(r.audio, start=r.start, end=r.end))
                batch.append(r)
            except AudioError as e:
                failed += 1
                log.warning("skipping %s: %s", r.id, e)
                if errors_path:
                    _append(errors_path, {"id": r.id, "audio": str(r.audio), "error": str(e)})
                bar.update(1)
        if not batch:
            continue
        preds = model.generate(waves, [r.prompt for r in batch], max_new_tokens=max_new_tokens, max_windows=max_windows)
        for r, pred in zip(batch, preds):
            pred = pred.strip()
            if output:
                _append(output, {"id": r.id, "prediction": pred, "prompt": r.prompt, "audio": str(r.audio)})
            else:
                answers[r.id] = pred
        bar.update(len(batch))
    bar.close()
    return {"answered": len(todo) - failed, "skipped_done": len(requests) - len(todo), "failed": failed,
            "answers": answers}


def load_model(directory: str, device: str):
    from af2.model import AudioFlamingo2

    model = AudioFlamingo2.from_pretrained(directory).eval()
    return model.to(torch.device(device))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
