"""ClothoAQA: yes/no and single-word questions about Clotho clips.

File: ``clotho_aqa_test.csv`` (or ``_val``/``_train``) as the dataset publishes it, columns
``file_name,QuestionText,answer,confidence``: one row per annotator answer, three annotators
per question; audio in ``audio_files/`` (or ``audio/``, or beside the CSV). The rows of one
(file, question) become one item; its reference is the majority answer (ties: the first
given), and the question is *unanimous* when every annotator gave the same answer.

Scoring is accuracy, as the benchmark's classifiers are scored: the prediction, normalised
(``af2.eval.normalize``: case, punctuation, articles, number words), equals the reference; for
a yes/no reference a prediction that starts with "yes"/"no" ("Yes, a dog barks.") counts by
that first word. Rows: all questions, and the unanimous ones (the subset AF2 reports).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from af2.eval.benchmarks.items import Item, Row, find_audio, find_file, predicted, rate, read_csv
from af2.eval.normalize import normalize

FILES = ("clotho_aqa_test.csv", "clotho_aqa_val.csv", "clotho_aqa_train.csv")
COLUMNS = ("file_name", "QuestionText", "answer")
AUDIO_DIRS = ("audio_files", "audio", ".")
YES_NO = ("yes", "no")


def load(data: Path) -> list[Item]:
    path = find_file(data, FILES, "ClothoAQA CSV")
    groups: dict[tuple[str, str], list[str]] = {}
    for row in read_csv(path, COLUMNS):
        groups.setdefault((row["file_name"].strip(), row["QuestionText"].strip()), []).append(row["answer"].strip())
    items = []
    for k, ((name, question), answers) in enumerate(groups.items()):
        counts = Counter(a.lower() for a in answers)
        top = max(counts.values())
        majority = next(a for a in answers if counts[a.lower()] == top)
        items.append(
            Item(
                f"{Path(name).stem}-q{k}",
                find_audio(path.parent, [f"{d}/{name}" for d in AUDIO_DIRS]),
                question,
                (majority,),
                None,
                "yes/no" if majority.lower() in YES_NO else "single word",
                {"answers": answers, "unanimous": len(counts) == 1, "file_name": name},
            )
        )
    return items


def is_correct(reference: str, prediction: str) -> bool:
    ref, pred = normalize(reference), normalize(prediction)
    first = pred.split()[:1]
    if ref in YES_NO and first and first[0] in YES_NO:
        return first[0] == ref
    return pred == ref


def score(name: str, items: Sequence[Item], predictions: dict[str, str], **_) -> list[Row]:
    rows = []
    for label, members in ((name, list(items)), (f"{name} (unanimous)", [it for it in items if it.extra["unanimous"]])):
        pairs, missing = predicted(members, predictions)
        right = [is_correct(it.references[0], p) for it, p in pairs]
        by_type = {}
        for (it, _), ok in zip(pairs, right):
            t = by_type.setdefault(it.category, [0, 0])
            t[0] += ok
            t[1] += 1
        rows.append(
            Row(
                label,
                "accuracy %",
                len(pairs),
                missing,
                rate(sum(right), len(pairs)),
                details={
                    "correct": sum(right),
                    "by_type": {k: {"n": v[1], "accuracy": rate(*v)} for k, v in by_type.items()},
                },
            )
        )
    return rows
