"""Reading what is evaluated: prediction files and the reference manifest.

Predictions are JSONL, one ``{"id": ..., "prediction": "..."}`` per line (other keys are
ignored). Lines are read by the batch-job reader (``af2.llm.jobs.read_records``), so a
broken line or a repeated id is reported, and the first line of an id is the one used.
References are an af2 manifest, read strictly: a bad reference line stops the evaluation
rather than silently leaving its sample out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from af2.data.manifest import Sample, load_manifest
from af2.llm.jobs import read_records


@dataclass
class Predictions:
    by_id: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # lines that could not be used, and why


def load_predictions(path: str | Path) -> Predictions:
    records, bad = read_records(Path(path))
    out, problems = Predictions(), [(b["input_line"], b["reasons"][0]) for b in bad]
    for record in records:
        prediction = record.data.get("prediction")
        if "id" not in record.data:
            problems.append((record.line, "no 'id'"))
        elif not isinstance(prediction, str):
            problems.append((record.line, "'prediction' is not a string"))
        else:
            out.by_id[record.source_id] = prediction
    out.problems = [f"line {line}: {why}" for line, why in sorted(problems)]
    return out


def load_references(path: str | Path) -> dict[str, Sample]:
    """The manifest's samples by id; raises ``ManifestValidationError`` on any bad line."""
    return {s.id: s for s in load_manifest(path, strict=True).samples}
