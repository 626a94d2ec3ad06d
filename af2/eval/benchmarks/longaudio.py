"""LongAudioBench-style long-audio QA, judged by an LLM from 1 to 10 against the reference.

File: ``longaudiobench.jsonl`` (or ``test.jsonl``), one question per line::

    {"id": "la-0", "audio": "audio/lecture.wav", "question": "...", "answer": "...",
     "category": "summary", "start": 0.0, "end": 300.0}

``id`` (default: ``line-N``), ``category``, ``start`` and ``end`` are optional; ``reference`` is
accepted for ``answer``; ``audio`` is relative to the file. Scoring is the paper's protocol: an
LLM judge (``af2.eval.judge``: the prompt ``templates/judge.vN.txt``, replies cached, resumable,
rejects kept apart) scores each prediction 1-10 against the reference; the row is the mean over
scored predictions. Its files lie in the output folder: ``{tag}.judged.jsonl`` and beside it
``.rejects.jsonl``, ``.cache.sqlite`` and ``.report.json``. Without a judge model (no
``--judge-model``, no ``AF2_LLM_MODEL``) the row is reported as skipped.
"""

from __future__ import annotations

import json
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from af2.data.manifest import Sample
from af2.eval.benchmarks.items import BenchmarkInputError, Item, Row, find_file, predicted
from af2.eval.inputs import load_predictions
from af2.eval.judge import Judge
from af2.eval.judge_summary import read_jsonl, summarize
from af2.llm import LLMClient, LLMConfig, ResponseCache
from af2.llm.jobs import Job, run_for_cli
from af2.llm.redact import install

FILES = ("longaudiobench.jsonl", "test.jsonl")


@dataclass
class JudgeSettings:
    """The judge's client settings (``LLMConfig``) and the judge template version (None: newest)."""

    config: LLMConfig
    template_version: Optional[int] = None


def _number(value, what: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BenchmarkInputError(f"{what} is not a number: {value!r}")
    return float(value)


def load(data: Path) -> list[Item]:
    path = find_file(data, FILES, "long-audio QA JSONL")
    items, seen = [], set()
    for n, text in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(text)
        except ValueError as err:
            raise BenchmarkInputError(f"{where}: not JSON ({err})") from err
        if not isinstance(row, dict):
            raise BenchmarkInputError(f"{where}: not a JSON object")
        answer = row.get("answer", row.get("reference"))
        for key, value in (("audio", row.get("audio")), ("question", row.get("question")), ("answer", answer)):
            if not isinstance(value, str) or not value.strip():
                raise BenchmarkInputError(f"{where}: '{key}' must be a non-empty string")
        item_id = str(row.get("id", f"line-{n}"))
        if item_id in seen:
            raise BenchmarkInputError(f"{where}: id {item_id!r} appears twice")
        seen.add(item_id)
        start, end = _number(row.get("start"), f"{where}: 'start'"), _number(row.get("end"), f"{where}: 'end'")
        items.append(
            Item(
                item_id,
                path.parent / row["audio"],
                row["question"],
                (answer,),
                None,
                row.get("category"),
                {"start": start, "end": end},
            )
        )
    return items


def references(items: Sequence[Item]) -> dict[str, Sample]:
    return {
        it.id: Sample(
            audio=it.audio,
            prompt=it.question,
            answer=it.references[0],
            start=it.extra.get("start"),
            end=it.extra.get("end"),
            skill=it.category,
            id=it.id,
            choices=None,
            line=k + 1,
        )
        for k, it in enumerate(items)
    }


def judge_file(settings: JudgeSettings, items: Sequence[Item], predictions_path: Path, out: Path):
    """Judge every prediction of ``predictions_path`` into ``out``; (exit status, summary)."""
    config = settings.config
    install(config.api_key)
    if config.temperature is None:
        config = config.replace(temperature=0.0)
    refs = references(items)
    cache = None if config.cache == "off" else ResponseCache(config.cache or f"{out}.cache.sqlite")
    client = LLMClient(config, cache=cache)
    job = Job(
        Judge(Namespace(template_version=settings.template_version), client, refs),
        predictions_path,
        out,
        progress=False,
    )
    code, _ = run_for_cli(job, report_path=Path(f"{out}.report.json"), api_key=config.api_key, cache=cache)
    summary = summarize(refs, set(load_predictions(predictions_path).by_id), read_jsonl(out), read_jsonl(job.rejects))
    return code, summary


def score(
    name: str,
    items: Sequence[Item],
    predictions: dict[str, str],
    *,
    predictions_path: Path,
    work_dir: Path,
    tag: str,
    judge: Optional[JudgeSettings] = None,
    **_,
) -> list[Row]:
    pairs, missing = predicted(items, predictions)
    if judge is None or not judge.config.model:
        return [
            Row(
                name,
                "LLM judge 1-10",
                0,
                missing,
                None,
                "skipped: no judge model (--judge-model or AF2_LLM_MODEL)",
                {"pending": len(pairs)},
            )
        ]
    out = work_dir / f"{tag}.judged.jsonl"
    code, summary = judge_file(judge, items, predictions_path, out)
    s = summary.overall
    notes = [f"judge {judge.config.model}"]
    if s.rejected:
        notes.append(f"{s.rejected} rejected (see {out.name}.rejects.jsonl)")
    if s.pending:
        notes.append(f"{s.pending} pending: rerun to resume")
    if code == 2:
        notes.append("the judge server failed: see the log")
    return [
        Row(
            name,
            "LLM judge 1-10",
            s.scored,
            missing,
            s.mean,
            "; ".join(notes),
            {"rejected": s.rejected, "pending": s.pending, "fallback_scored": s.fallback, "judged": str(out)},
        )
    ]
