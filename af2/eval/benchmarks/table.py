"""The results table as the paper prints it: one row per benchmark (and subset) and metric,
with ``n`` (items scored), ``missing`` (items without a prediction) and the score; with a
baseline, its n and score side by side. Markdown for reading, JSON for machines.
"""

from __future__ import annotations

from typing import Optional, Sequence

from af2.eval.benchmarks.items import Row


def _fmt(score: Optional[float], metric: str) -> str:
    """Percentages with one decimal, other scores with three; ``-`` when there is none."""
    return "-" if score is None else f"{score:.1f}" if metric.endswith("%") else f"{score:.3f}"


def markdown(rows: Sequence[Row], baseline: Optional[Sequence[Row]] = None) -> str:
    header = ["benchmark", "metric", "n", "missing", "score"]
    if baseline is not None:
        header += ["baseline n", "baseline"]
    header.append("note")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for k, r in enumerate(rows):
        cells = [r.benchmark, r.metric, str(r.n), str(r.missing), _fmt(r.score, r.metric)]
        if baseline is not None:
            b = baseline[k]
            cells += [str(b.n), _fmt(b.score, b.metric)]
        cells.append(r.note.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(
    benchmark: str, rows: Sequence[Row], baseline: Optional[Sequence[Row]], sources: dict, complete: bool
) -> dict:
    out = {"benchmark": benchmark, "complete": complete, **sources, "rows": [r.to_dict() for r in rows]}
    if baseline is not None:
        out["baseline_rows"] = [r.to_dict() for r in baseline]
    return out
