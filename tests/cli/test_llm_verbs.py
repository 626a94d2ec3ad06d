"""Exit statuses of ``af2 gen`` and ``af2 judge`` against the scripted server: 0 done, 1 records
pending (a rerun continues), 2 bad input or an unreachable server (one line, nothing written)."""

from __future__ import annotations

import json

import pytest

from af2.errors import ServerUnreachable
from tests.cli.conftest import bad_input, files_under, write_jsonl
from tests.eval.fake_judge import fair_judge
from tests.llm.conftest import KEY
from tests.llm.fake_llm import well_behaved
from tests.llm.server import error

CAPTIONS = [
    {"id": "c1", "audio": "clips/c1.wav", "caption": "A dog barks twice then a car passes"},
    {"id": "c2", "audio": "clips/c2.wav", "caption": "A loud siren then a quiet bell"},
]
REFS = [
    {"id": "r0", "audio": "a.wav", "prompt": "What happens?", "answer": "event 0 happens"},
    {"id": "r1", "audio": "b.wav", "prompt": "How much?", "answer": "worth 4"},
]
PREDS = [{"id": "r0", "prediction": "event 0 happens"}, {"id": "r1", "prediction": "worth 4"}]


@pytest.fixture(autouse=True)
def llm_env(monkeypatch):
    monkeypatch.setenv("AF2_LLM_API_KEY", KEY)
    monkeypatch.setenv("AF2_LLM_MODEL", "test-model")


def client_flags(server) -> list[str]:
    return [
        "--base-url",
        server.url,
        "--backoff-base",
        "0.001",
        "--backoff-max",
        "0.004",
        "--max-retries",
        "0",
        "--no-progress",
        "--log-level",
        "WARNING",
    ]


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_gen_done_then_pending_then_resumed(af2, serve, tmp_path):
    inp = write_jsonl(tmp_path / "in" / "captions.jsonl", CAPTIONS)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "para.jsonl"
    down = serve(lambda index, body: error(500))
    result = af2("gen", "paraphrase", "--input", inp, "--output", out, "--m", "2", *client_flags(down))
    assert result.code == 1 and "2 failed" in result.err and not lines(out)  # pending: rerun to resume
    up = serve(well_behaved)
    result = af2("gen", "paraphrase", "--input", inp, "--output", out, "--m", "2", *client_flags(up))
    assert result.code == 0, result.err
    assert sorted(x["provenance"]["source_id"] for x in lines(out)) == ["c1", "c2"]
    result = af2("gen", "paraphrase", "--input", inp, "--output", out, "--m", "2", *client_flags(up))
    assert result.code == 0 and "2 done before" in result.err and up.count == 2


def test_gen_bad_input_writes_nothing(af2, serve, tmp_path, monkeypatch):
    server = serve(well_behaved)
    inp = write_jsonl(tmp_path / "captions.jsonl", CAPTIONS)
    out = tmp_path / "para.jsonl"
    before = files_under(tmp_path)
    for argv, words in [
        (["--input", tmp_path / "nope.jsonl", "--output", out], ["--input", "no such file"]),
        (["--input", tmp_path, "--output", out], ["--input", "is a directory"]),
        (["--input", inp, "--output", tmp_path / "no" / "p.jsonl"], ["--output", "does not exist"]),
        (["--input", inp, "--output", tmp_path], ["--output", "is a directory"]),
        (["--input", inp, "--output", out, "--limit", "0"], ["--limit", ">= 1"]),
        (["--input", inp, "--output", out, "--rejects", tmp_path / "no" / "r.jsonl"], ["--rejects"]),
        (["--output", out], ["--input"]),
    ]:
        bad_input(af2("gen", "paraphrase", *argv, *client_flags(server)), *words)
    monkeypatch.delenv("AF2_LLM_MODEL")
    bad_input(af2("gen", "negatives", "--input", inp, "--output", out, *client_flags(server)), "no model", "--model")
    assert files_under(tmp_path) == before and server.count == 0


def test_gen_unreachable_server_is_status_2(af2, serve, tmp_path, monkeypatch, caplog):
    """The jobs raise ServerUnreachable when the server is not there; the job runner reports it
    as one "stopped:" message (after which the run's summary is printed) and status 2."""
    from af2.llm import jobs

    def unreachable(self):
        raise ServerUnreachable("the LLM server at http://127.0.0.1:9/v1 refused 3 connections in a row")

    monkeypatch.setattr(jobs.Job, "run", unreachable)
    inp = write_jsonl(tmp_path / "captions.jsonl", CAPTIONS)
    result = af2("gen", "qa", "--input", inp, "--output", tmp_path / "qa.jsonl", *client_flags(serve(well_behaved)))
    assert result.code == 2, result
    stopped = [r.getMessage() for r in caplog.records if "refused 3 connections" in r.getMessage()]
    assert stopped == ["stopped: the LLM server at http://127.0.0.1:9/v1 refused 3 connections in a row"]
    assert "0 lines written" in result.err and not (tmp_path / "qa.jsonl").exists()


def test_judge_done_then_pending(af2, serve, tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    out = tmp_path / "judged.jsonl"
    down = serve(lambda index, body: error(500))
    result = af2("judge", "--input", preds, "--reference", refs, "--output", out, *client_flags(down))
    assert result.code == 1 and "2 pending" in result.err
    result = af2("judge", "--input", preds, "--reference", refs, "--output", out, *client_flags(serve(fair_judge)))
    assert result.code == 0, result.err
    assert {x["id"]: x["score"] for x in lines(out)} == {"r0": 10, "r1": 10}


def test_judge_bad_input_writes_nothing(af2, serve, tmp_path):
    server = serve(fair_judge)
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    bad_refs = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "prompt": "?"}])
    out = tmp_path / "judged.jsonl"
    before = files_under(tmp_path)
    for argv, words in [
        (["--input", tmp_path / "p.jsonl", "--reference", refs], ["--input", "no such file"]),
        (["--input", preds, "--reference", tmp_path], ["--reference", "is a directory"]),
        (["--input", preds, "--reference", bad_refs], ["--reference", "bad line(s)"]),
    ]:
        bad_input(af2("judge", *argv, "--output", out, *client_flags(server)), *words)
    bad_input(
        af2(
            "judge",
            "--input",
            preds,
            "--reference",
            refs,
            "--output",
            tmp_path / "no" / "j.jsonl",
            *client_flags(server),
        ),
        "--output",
        "does not exist",
    )
    assert files_under(tmp_path) == before and server.count == 0
