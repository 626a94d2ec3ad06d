"""MMAU (test-mini): multiple-choice questions on sound, music and speech.

File: ``mmau-test-mini.json``, a JSON list of objects as the MMAU repository publishes it::

    {"id": "3fe6...", "audio_id": "./test-mini-audios/3fe6....wav", "question": "...",
     "choices": ["Man", "Woman", "Child", "Robot"], "answer": "Man", "dataset": "AudioSet",
     "task": "sound", "split": "test-mini", "category": "Reasoning",
     "sub-category": "Acoustic Source Inference", "difficulty": "medium"}

``audio_id`` is relative to the JSON file. Scoring is MMAU's ``evaluation.py``: a prediction is
right when it holds every word of the answer and no word of another option that the answer does
not share (words: ``\\b\\w+\\b`` of the lower-cased text); samples without a prediction are
counted apart and not scored. Before that matching, a prediction that is only an option label
("B", "(B)") is replaced by that option's text and a leading label ("(B) Woman") is dropped,
since af2 lists the options as "(A) ...". One row per task (sound, music, speech) and one over
all; the JSON details break each down by difficulty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from af2.eval.benchmarks.items import BenchmarkInputError, Item, Row, find_file, predicted, rate
from af2.eval.parsing import label_index, strip_label

FILES = ("mmau-test-mini.json", "mmau-test.json")
REQUIRED = ("id", "audio_id", "question", "choices", "answer")
_BARE_LABEL = re.compile(r"^\s*[(\[]?([A-Za-z])[)\]]?[.:]?\s*$")  # "B", "(b)", "B.", "[B]"


def load(data: Path) -> list[Item]:
    path = find_file(data, FILES, "MMAU JSON")
    try:
        rows = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise BenchmarkInputError(f"{path}: not JSON ({err})") from err
    if not isinstance(rows, list):
        raise BenchmarkInputError(f"{path}: expected a JSON list of questions, got {type(rows).__name__}")
    items = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or any(f not in row for f in REQUIRED):
            missing = [f for f in REQUIRED if not isinstance(row, dict) or f not in row]
            raise BenchmarkInputError(f"{path}: question {k} has no {', '.join(missing)}")
        for key in ("question", "answer", "audio_id"):
            if not isinstance(row[key], str):
                raise BenchmarkInputError(f"{path}: question {k} ({row['id']}): '{key}' is not a string")
        choices = row["choices"]
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise BenchmarkInputError(f"{path}: question {k} ({row['id']}): 'choices' is not a list of strings")
        items.append(
            Item(
                str(row["id"]),
                path.parent / row["audio_id"],
                row["question"],
                (row["answer"],),
                tuple(choices),
                row.get("task"),
                {
                    "difficulty": row.get("difficulty"),
                    "category": row.get("category"),
                    "sub-category": row.get("sub-category"),
                },
            )
        )
    return items


def tokenize(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", text.lower()))


def string_match(answer: str, prediction: str, choices: Sequence[str]) -> bool:
    """MMAU's matching: every answer word in the prediction, no word only other options have."""
    prediction_tokens, answer_tokens = tokenize(prediction), tokenize(answer)
    if not prediction_tokens:
        return False
    incorrect = set()
    for choice in choices:
        tokens = tokenize(choice)
        if tokens != answer_tokens:
            incorrect |= tokens - answer_tokens
    return answer_tokens <= prediction_tokens and prediction_tokens.isdisjoint(incorrect)


def resolve_label(prediction: str, choices: Sequence[str]) -> str:
    """A bare option label becomes the option's text; a leading label is dropped."""
    whole = _BARE_LABEL.match(prediction)
    if whole:
        index = label_index(whole.group(1), len(choices))
        if index is not None:
            return choices[index]
    return strip_label(prediction)


def is_correct(item: Item, prediction: str) -> bool:
    return string_match(item.references[0], resolve_label(prediction, item.choices), item.choices)


def score(name: str, items: Sequence[Item], predictions: dict[str, str], **_) -> list[Row]:
    rows = []
    groups = [(t, [it for it in items if it.category == t]) for t in ("sound", "music", "speech")]
    others = [it for it in items if it.category not in ("sound", "music", "speech")]
    if others:
        groups.append(("other", others))
    for group, members in [g for g in groups if g[1]] + [("all", list(items))]:
        pairs, missing = predicted(members, predictions)
        right = [is_correct(it, p) for it, p in pairs]
        by_difficulty = {}
        for (it, _), ok in zip(pairs, right):
            d = by_difficulty.setdefault(str(it.extra.get("difficulty")), [0, 0])
            d[0] += ok
            d[1] += 1
        difficulty = {k: {"n": v[1], "accuracy": rate(*v)} for k, v in by_difficulty.items()}
        rows.append(
            Row(
                f"{name} ({group})",
                "accuracy %",
                len(pairs),
                missing,
                rate(sum(right), len(pairs)),
                details={"correct": sum(right), "by_difficulty": difficulty},
            )
        )
    return rows
