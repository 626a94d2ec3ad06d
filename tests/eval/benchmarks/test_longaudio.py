"""Long-audio QA: the JSONL read, each answer judged 1-10 by the LLM judge (a local fake judge
server), resumable, and reported as skipped or partial when the judge is absent or fails."""

from __future__ import annotations

import json

import pytest

from af2.eval.benchmarks import JudgeSettings, longaudio, run_benchmark
from af2.eval.benchmarks.items import BenchmarkInputError
from af2.llm import LLMConfig
from tests.eval.benchmarks.conftest import predictions
from tests.eval.fake_judge import fair_judge
from tests.llm.conftest import KEY
from tests.llm.server import error


def settings(server, **overrides) -> JudgeSettings:
    values = dict(
        base_url=server.url,
        model="test-model",
        api_key=KEY,
        timeout=5.0,
        max_retries=1,
        backoff_base=0.001,
        backoff_max=0.004,
        concurrency=2,
        max_repairs=1,
    )
    return JudgeSettings(LLMConfig(**{**values, **overrides}))


def test_load(longaudio_dir, tmp_path):
    first, second = longaudio.load(longaudio_dir)
    assert (first.id, first.references, first.category) == ("la-0", ("a beep",), "order")
    assert second.references == ("a steady tone",)  # "reference" is accepted for "answer"
    assert second.request().start == 0.5 and second.request().end == 2.5
    assert first.audio == longaudio_dir / "audio" / "scene.wav"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "audio": "a.wav", "question": "q"}\n')
    with pytest.raises(BenchmarkInputError, match=r"bad.jsonl:1: 'answer' must be a non-empty string"):
        longaudio.load(bad)
    bad.write_text('{"audio": "a.wav", "question": "q", "answer": "r", "start": "soon"}\n')
    with pytest.raises(BenchmarkInputError, match="'start' is not a number"):
        longaudio.load(bad)


def test_judged_mean_resumes_without_new_requests(serve, longaudio_dir, tmp_path):
    server = serve(fair_judge)
    pred = predictions(tmp_path / "p.jsonl", {"la-0": "a beep", "la-1": "worth 6"})
    base = predictions(tmp_path / "b.jsonl", {"la-0": "worth 3", "la-1": "worth 2"})
    out = tmp_path / "out"
    result = run_benchmark(
        "longaudiobench", longaudio_dir, None, out, predictions=pred, baseline=base, judge=settings(server)
    )
    [row], [brow] = result.rows, result.baseline_rows
    assert (row.metric, row.n, row.missing, row.score) == ("LLM judge 1-10", 2, 0, 8.0)
    assert (brow.n, brow.score) == (2, 2.5) and result.complete
    lines = [json.loads(x) for x in (out / "predictions.judged.jsonl").read_text().splitlines()]
    judged = {line["id"]: line["score"] for line in lines}
    assert judged == {"la-0": 10, "la-1": 6}
    assert (out / "baseline.judged.jsonl").is_file() and server.count == 4
    again = run_benchmark(
        "longaudiobench", longaudio_dir, None, out, predictions=pred, baseline=base, judge=settings(server)
    )
    assert again.rows[0].score == 8.0 and server.count == 4  # judged ids are not asked again


def test_missing_prediction_and_absent_judge(serve, longaudio_dir, tmp_path):
    pred = predictions(tmp_path / "p.jsonl", {"la-0": "a beep"})
    result = run_benchmark(
        "longaudiobench", longaudio_dir, None, tmp_path / "out", predictions=pred, judge=settings(serve(fair_judge))
    )
    assert (result.rows[0].n, result.rows[0].missing, result.rows[0].score) == (1, 1, 10.0)
    assert not result.complete
    skipped = run_benchmark(
        "longaudiobench",
        longaudio_dir,
        None,
        tmp_path / "out2",
        predictions=pred,
        judge=JudgeSettings(LLMConfig.from_env({}, model=None)),
    )
    assert skipped.rows[0].score is None and skipped.rows[0].note.startswith("skipped: no judge model")
    assert not skipped.complete


def test_failing_judge_leaves_the_run_partial(serve, longaudio_dir, tmp_path):
    pred = predictions(tmp_path / "p.jsonl", {"la-0": "a beep", "la-1": "worth 6"})
    result = run_benchmark(
        "longaudiobench",
        longaudio_dir,
        None,
        tmp_path / "out",
        predictions=pred,
        judge=settings(serve(lambda i, body: error(401))),
    )
    row = result.rows[0]
    assert row.score is None and row.n == 0 and row.details["pending"] == 2
    assert "the judge server failed" in row.note and not result.complete
    fixed = run_benchmark(
        "longaudiobench", longaudio_dir, None, tmp_path / "out", predictions=pred, judge=settings(serve(fair_judge))
    )
    assert fixed.complete and fixed.rows[0].score == 8.0
