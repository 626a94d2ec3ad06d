"""What every benchmark loader produces: :class:`Item` (one question or one clip to caption),
:class:`Row` (one line of the results table) and :class:`BenchmarkInputError` (a benchmark file
that cannot be read, with the file and what is wrong in it).

An item is what ``af2 infer`` answers (``request``: id, audio, prompt) plus what the metric
needs: the reference answer(s), the options of a multiple-choice question and a category to
break scores down by. Audio paths are resolved against the benchmark's folder; a missing or
unreadable audio file is not a load error: inference reports it and skips the item.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from af2.eval.infer import Request
from af2.text.prompts import with_choices


class BenchmarkInputError(ValueError):
    """A benchmark file that is missing or not in its benchmark's format."""


@dataclass(frozen=True)
class Item:
    id: str
    audio: Path
    question: str  # as the benchmark writes it
    references: tuple[str, ...]  # one answer, or several captions
    choices: Optional[tuple[str, ...]] = None
    category: Optional[str] = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def prompt(self) -> str:
        """The question as the model sees it: options appended as in training."""
        return with_choices(self.question, self.choices)

    def request(self) -> Request:
        return Request(self.id, self.audio, self.prompt, self.extra.get("start"), self.extra.get("end"))


@dataclass
class Row:
    """One line of the table: ``score`` is None when the metric could not be computed, and
    ``note`` says why (``skipped: ...``) or adds what the score depends on."""

    benchmark: str
    metric: str
    n: int  # items scored
    missing: int  # items without a prediction (not scored)
    score: Optional[float]
    note: str = ""
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "metric": self.metric,
            "n": self.n,
            "missing": self.missing,
            "score": self.score,
            "note": self.note,
            "details": self.details,
        }


def find_file(data: Path, names: Sequence[str], what: str) -> Path:
    """``data`` itself when it is a file, else the first of ``names`` inside it."""
    if data.is_file():
        return data
    if not data.is_dir():
        raise BenchmarkInputError(f"--data: {data} does not exist")
    for name in names:
        if (data / name).is_file():
            return data / name
    raise BenchmarkInputError(f"--data: {data} holds no {what} ({' or '.join(names)})")


def find_audio(root: Path, candidates: Iterable[str]) -> Path:
    """The first candidate (relative to ``root``) that exists, else the first one: inference then
    reports it as unreadable."""
    candidates = list(candidates)
    for c in candidates:
        if (root / c).is_file():
            return root / c
    return root / candidates[0]


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV with a header holding every ``required`` column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise BenchmarkInputError(
                    f"{path}: no column {', '.join(map(repr, missing))} (header: {', '.join(header) or 'empty'})"
                )
            rows = []
            for n, row in enumerate(reader, 2):
                if None in row or any(row.get(c) is None for c in required):
                    raise BenchmarkInputError(f"{path}:{n}: {len(header)} columns expected")
                rows.append(row)
            return rows
    except UnicodeDecodeError as err:
        raise BenchmarkInputError(f"{path}: not UTF-8 text ({err.reason})") from err


def predicted(items: Sequence[Item], predictions: dict[str, str]) -> tuple[list[tuple[Item, str]], int]:
    """(item, prediction) of the items that have one, and how many have none."""
    pairs = [(it, predictions[it.id]) for it in items if it.id in predictions]
    return pairs, len(items) - len(pairs)


def rate(k: int, n: int) -> Optional[float]:
    """``k / n`` in percent, None without items."""
    return 100.0 * k / n if n else None
