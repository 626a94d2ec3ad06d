"""``run_benchmark``: a benchmark's items answered (by a saved model, or read from a predictions
file), scored as the benchmark's authors score them, and written as the results table.

In ``output`` (a folder): ``predictions.jsonl`` (the model's answers, when a model runs: appended
as they come, so a rerun skips the ids already answered, like ``af2 infer``), ``results.md`` and
``results.json`` (the table; rewritten by every run), and the judge's files for judged
benchmarks. A run is *complete* when every item has a prediction and nothing waits on the judge;
otherwise rerunning the same command continues it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from af2.eval import infer
from af2.eval.benchmarks import registry, table
from af2.eval.benchmarks.items import BenchmarkInputError, Row
from af2.eval.benchmarks.longaudio import JudgeSettings
from af2.eval.inputs import load_predictions

log = logging.getLogger("af2.eval.benchmarks")


@dataclass
class Result:
    rows: list[Row]
    baseline_rows: Optional[list[Row]]
    complete: bool
    markdown: str
    paths: dict


def _predictions(path: Path, ids: set[str]) -> dict[str, str]:
    loaded = load_predictions(path)
    for problem in loaded.problems:
        log.warning("%s: %s (not used)", path, problem)
    stray = set(loaded.by_id) - ids
    if stray:
        log.warning(
            "%s: %d predictions match no item of the benchmark (ignored), e.g. %r", path, len(stray), sorted(stray)[0]
        )
    return loaded.by_id


def run_benchmark(
    name: str,
    data_dir,
    model_dir,
    output,
    *,
    predictions=None,
    baseline=None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    max_windows: Optional[int] = None,
    device: Optional[str] = None,
    judge: Optional[JudgeSettings] = None,
    progress: bool = True,
) -> Result:
    """Evaluate ``model_dir`` (None with ``predictions``: that file is scored instead) on benchmark
    ``name`` read from ``data_dir``, writing into the folder ``output``; ``baseline``: another
    model's predictions file, scored alongside. Raises ``BenchmarkInputError`` on bad input."""
    bench = registry.get(name)
    items = bench.load(Path(data_dir))
    if not items:
        raise BenchmarkInputError(f"--data: {data_dir} holds no {bench.title} items")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BenchmarkInputError(f"--output: {out} is a file, not a folder")
    for flag, path in (("--predictions", predictions), ("--baseline", baseline)):
        if path is not None and not Path(path).is_file():
            raise BenchmarkInputError(f"{flag}: {path} does not exist")
    if predictions is None:
        if model_dir is None:
            raise BenchmarkInputError("--model: a model folder is needed unless --predictions is given")
        if not Path(model_dir).is_dir():
            raise BenchmarkInputError(f"--model: {model_dir} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if predictions is None:
        pred_path = out / "predictions.jsonl"
        try:
            model = infer.load_model(str(model_dir), device or infer.default_device())
        except (OSError, ValueError, KeyError) as err:
            raise BenchmarkInputError(f"--model: cannot load {model_dir}: {err}") from err
        counts = infer.run(
            model,
            [it.request() for it in items],
            output=pred_path,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            max_windows=max_windows,
            progress=progress,
        )
        log.info(
            "answered %d, already done %d, unreadable audio %d (see %s.errors.jsonl)",
            counts["answered"],
            counts["skipped_done"],
            counts["failed"],
            pred_path.name,
        )
    else:
        pred_path = Path(predictions)
    ids = {it.id for it in items}
    context = {"work_dir": out, "judge": judge}
    rows = bench.score(
        bench.title, items, _predictions(pred_path, ids), predictions_path=pred_path, tag="predictions", **context
    )
    baseline_rows = None
    if baseline is not None:
        base_path = Path(baseline)
        baseline_rows = bench.score(
            bench.title, items, _predictions(base_path, ids), predictions_path=base_path, tag="baseline", **context
        )
    complete = all(r.missing == 0 and not r.details.get("pending") for r in rows)
    text = table.markdown(rows, baseline_rows)
    paths = {
        "predictions": str(pred_path),
        "baseline": None if baseline is None else str(baseline),
        "data": str(data_dir),
        "model": None if model_dir is None or predictions is not None else str(model_dir),
    }
    (out / "results.md").write_text(text, "utf-8")
    report = table.to_json(bench.name, rows, baseline_rows, paths, complete)
    (out / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return Result(rows, baseline_rows, complete, text, paths)
