"""JSONL manifests of audio question-answer samples.

One JSON object per line::

    {"audio": "clips/a.flac", "prompt": "How many beeps?", "answer": "3",
     "start": 12.5, "end": 42.5, "skill": "counting", "id": "a-0", "choices": ["2", "3"]}

``audio``, ``prompt`` and ``answer`` are required; ``start``/``end`` (seconds, the span of
the file to use), ``skill`` (one of :data:`af2.data.skills.SKILLS`), ``id`` and ``choices``
are optional. Other keys are kept in :attr:`Sample.extra`. A relative ``audio`` path is
resolved against the manifest's folder. :func:`load_manifest` checks every line and
reports each bad one with its 1-based line number and the reason (bad JSON, a bad field,
a duplicate id, bytes that are not UTF-8: lines are read by :mod:`af2.jsonl`); it never
stops at the first error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from af2.data.skills import SKILLS
from af2.jsonl import read_jsonl, read_lines  # noqa: F401 (read_lines: the manifest's raw lines)

KNOWN_KEYS = ("audio", "prompt", "answer", "start", "end", "skill", "id", "choices")


@dataclass
class Sample:
    """One manifest line: an audio span and a question with its answer."""

    audio: Path
    prompt: str
    answer: str
    start: float | None
    end: float | None
    skill: str | None
    id: str
    choices: list[str] | None
    line: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestError:
    """A bad manifest line: 1-based ``line`` number and a human-readable ``reason``."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class ManifestValidationError(ValueError):
    """Raised by ``load_manifest(strict=True)``; lists every bad line."""

    def __init__(self, path: Path, errors: list[ManifestError]):
        self.path = path
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{path}: {len(errors)} bad line(s):\n{lines}")


@dataclass
class ManifestResult:
    """What :func:`load_manifest` found: the good samples and the bad lines."""

    path: Path
    samples: list[Sample]
    errors: list[ManifestError]

    @property
    def ok(self) -> bool:
        return not self.errors


def _optional_seconds(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{key}' must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"'{key}' must be a finite number >= 0, got {value!r}")
    return float(value)


def _required_text(obj: Mapping[str, Any], key: str) -> str:
    if key not in obj:
        raise ValueError(f"missing required key '{key}'")
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"'{key}' is empty")
    return value


def _parse_line(obj: Any, line: int, root: Path) -> Sample:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    audio = Path(_required_text(obj, "audio"))
    prompt = _required_text(obj, "prompt")
    answer = _required_text(obj, "answer")
    start = _optional_seconds(obj, "start")
    end = _optional_seconds(obj, "end")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"'end' ({end}) must be greater than 'start' ({start})")
    skill = obj.get("skill")
    if skill is not None and skill not in SKILLS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {', '.join(SKILLS)}")
    choices = obj.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError("'choices' must be a list of strings")
        if answer not in choices:
            raise ValueError(f"answer {answer!r} is not one of the choices {choices!r}")
    sample_id = obj.get("id", f"line{line}")
    if not isinstance(sample_id, (str, int)):
        raise ValueError(f"'id' must be a string, got {type(sample_id).__name__}")
    extra = {k: v for k, v in obj.items() if k not in KNOWN_KEYS}
    return Sample(
        audio=audio if audio.is_absolute() else root / audio,
        prompt=prompt,
        answer=answer,
        start=start,
        end=end,
        skill=skill,
        id=str(sample_id),
        choices=choices,
        line=line,
        extra=extra,
    )


def load_manifest(path: str | Path, *, strict: bool = False) -> ManifestResult:
    """Read and validate a JSONL manifest.

    Blank lines are skipped. Every other line must be a JSON object with the keys described
    in this module's docstring. Returns all good samples and one :class:`ManifestError`
    per bad line; with ``strict=True`` raises :class:`ManifestValidationError` listing
    every bad line instead. Duplicate ids are reported as errors (the later line is bad).
    A manifest that is missing or unreadable raises :class:`af2.errors.InputError`; the audio
    files are *not* checked here: the loader reports unreadable audio per sample.
    """
    path = Path(path)
    root = path.resolve().parent
    samples: list[Sample] = []
    errors: list[ManifestError] = []
    seen: dict[str, int] = {}
    for entry in read_jsonl(path, "manifest", objects=False):
        if not entry.ok:
            errors.append(ManifestError(entry.line, entry.error))
            continue
        try:
            sample = _parse_line(entry.value, entry.line, root)
        except ValueError as e:
            errors.append(ManifestError(entry.line, str(e)))
            continue
        if sample.id in seen:
            errors.append(ManifestError(entry.line, f"duplicate id {sample.id!r} (first on line {seen[sample.id]})"))
            continue
        seen[sample.id] = entry.line
        samples.append(sample)
    if strict and errors:
        raise ManifestValidationError(path, errors)
    return ManifestResult(path=path, samples=samples, errors=errors)


def write_manifest(path: str | Path, records: Iterable[Mapping[str, Any] | Sample]) -> int:
    """Write records (dicts or :class:`Sample`) as JSONL; returns the number written.

    ``Sample.audio`` paths inside the manifest's folder are written relative to it, so
    the folder can be moved as a whole. ``None`` values are omitted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            if isinstance(rec, Sample):
                audio = rec.audio.resolve()
                rec = {
                    "audio": str(audio.relative_to(root)) if audio.is_relative_to(root) else str(audio),
                    "prompt": rec.prompt,
                    "answer": rec.answer,
                    "start": rec.start,
                    "end": rec.end,
                    "skill": rec.skill,
                    "id": rec.id,
                    "choices": rec.choices,
                    **rec.extra,
                }
            obj = {k: (str(v) if isinstance(v, Path) else v) for k, v in rec.items() if v is not None}
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    return count
