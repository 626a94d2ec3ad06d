"""The judge pipeline against a real local server: faults, rejects, resume, concurrency, cache keys."""

from __future__ import annotations

import dataclasses
from argparse import Namespace
from collections import Counter

from af2.eval.inputs import load_predictions, load_references
from af2.eval.judge import Judge
from af2.eval.judge_summary import read_jsonl, summarize
from af2.llm.jobs import Job
from af2.llm.pipeline import Record
from tests.eval.conftest import manifest_rows, write_jsonl
from tests.eval.fake_judge import fair_judge, faulty, verdict
from tests.llm.conftest import make_client
from tests.llm.server import Reply, completion, error

ARGS = Namespace(template_version=None)


def run_job(server, tmp_path, refs, preds: dict[str, str], **client_settings):
    """One judge job over ``preds`` (id -> prediction); the client caches in tmp_path."""
    pred_path = write_jsonl(tmp_path / "preds.jsonl", [{"id": k, "prediction": v} for k, v in preds.items()])
    client = make_client(server, cache_path=tmp_path / "cache.sqlite", **client_settings)
    job = Job(Judge(ARGS, client, load_references(refs)), pred_path, tmp_path / "out" / "judged.jsonl", progress=False)
    stats = job.run()
    client.cache.close()
    summary = summarize(
        load_references(refs), set(load_predictions(pred_path).by_id), read_jsonl(job.out), read_jsonl(job.rejects)
    )
    return job, stats, client, summary


def results(job) -> tuple[dict, dict]:
    """Output lines and rejects by id, after checking that no id has two results."""
    lines, rejects = read_jsonl(job.out), read_jsonl(job.rejects)
    ids = Counter([line["id"] for line in lines] + [r["source_id"] for r in rejects])
    assert all(count == 1 for count in ids.values()), ids
    return {line["id"]: line for line in lines}, {r["source_id"]: r for r in rejects}


def test_faults_are_retried_repaired_or_rejected_each_id_once(serve, tmp_path):
    refs = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(8))
    preds = {
        "r0": "event 0 happens",
        "r1": "worth 6",
        "r2": "worth 5",
        "r3": "worth 4",
        "r4": "worth 8",
        "r5": "worth 3",
        "r6": "worth 9",
        "r7": "worth 2",
        "ghost": "worth 7",
    }
    server = serve(
        faulty(
            {
                "worth 6": [Reply(delay=2.0, body={})],  # a timeout, then the verdict
                "worth 5": [error(500)],
                "worth 4": [error(429, {"Retry-After": "0"})],
                "worth 8": [completion('Sure! {score: 8, "explanation": "ok"')],  # malformed JSON: repaired
                "worth 3": [verdict(11)],  # out of range once: repaired
                "worth 9": [verdict(11), verdict(0), verdict(12)],  # out of range every time: rejected
                "worth 2": [completion("Score: 2/10. Mostly wrong.")] * 3,  # no JSON ever: the fallback parser
            }
        )
    )
    job, stats, client, summary = run_job(server, tmp_path, refs, preds, timeout=0.5)
    lines, rejects = results(job)
    assert {k: v["score"] for k, v in lines.items()} == {"r0": 10, "r1": 6, "r2": 5, "r3": 4, "r4": 8, "r5": 3, "r7": 2}
    assert set(rejects) == {"r6", "ghost"} and "no reference with id 'ghost'" in rejects["ghost"]["reasons"][0]
    assert any("12 is greater than the maximum of 10" in r for r in rejects["r6"]["reasons"])
    assert '"score": 12' in rejects["r6"]["raw"]
    assert lines["r7"]["parsed_by"] == "fallback" and lines["r5"]["parsed_by"] == "json"
    assert lines["r4"]["provenance"]["llm_calls"] == 2 and lines["r0"]["provenance"]["llm_calls"] == 1
    assert (stats.ok, stats.rejected, stats.failed) == (7, 2, 0)
    assert server.count == 1 + 2 + 2 + 2 + 2 + 2 + 3 + 3  # the ghost costs no request
    usage = client.report()
    assert dict(usage.retries) == {"timeout": 1, "http_500": 1, "http_429": 1}
    assert usage.events["repair_requests"] == 6 and usage.events["rejected_replies"] == 2
    assert usage.events["fallback_scores"] == 1
    overall = summary.overall
    assert (overall.n, overall.scored, overall.rejected, overall.pending, overall.fallback) == (8, 7, 1, 0, 1)
    assert overall.mean == (10 + 6 + 5 + 4 + 8 + 3 + 2) / 7  # the rejected r6 is not in the mean
    assert {k: (t.scored, t.rejected, t.mean) for k, t in summary.by_skill.items()} == {
        "temporal_reasoning": (2, 1, 7.0),
        "counting": (2, 0, 7.0),
        "general_reasoning": (2, 0, 4.0),
        "untagged": (1, 0, 2.0),
    }
    assert summary.stray_rejects == ["ghost"] and summary.duplicates == 0


def test_retries_exhausted_leave_the_id_pending_and_a_rerun_finishes_it(serve, tmp_path):
    refs = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(3))
    preds = {"r0": "worth 7", "r1": "worth 5", "r2": "event 2 happens"}
    server = serve(faulty({"worth 5": [error(503)] * 4}))  # max_retries 3: four tries, all fail
    job, stats, _, summary = run_job(server, tmp_path, refs, preds)
    lines, rejects = results(job)
    assert set(lines) == {"r0", "r2"} and not rejects and stats.failed == 1
    assert (summary.overall.scored, summary.overall.pending) == (2, 1) and summary.overall.mean == 8.5
    job, stats, _, summary = run_job(server, tmp_path, refs, preds)
    lines, rejects = results(job)
    assert {k: v["score"] for k, v in lines.items()} == {"r0": 7, "r1": 5, "r2": 10} and not rejects
    assert (stats.already_done, stats.ok, stats.failed) == (2, 1, 0)
    assert server.count == 1 + 4 + 1 + 1  # only the pending id was asked again
    assert (summary.overall.scored, summary.overall.pending) == (3, 0)


def test_concurrency_is_limited(serve, tmp_path):
    refs = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(6))
    server = serve(lambda index, body: dataclasses.replace(fair_judge(index, body), delay=0.2))
    job, stats, _, _ = run_job(server, tmp_path, refs, {f"r{i}": f"worth {i + 1}" for i in range(6)}, concurrency=2)
    assert stats.ok == 6 and server.count == 6
    assert server.max_in_flight == 2  # requests overlapped, never more than two at once


def test_the_cache_key_is_model_prompt_reference_and_answer(serve, tmp_path):
    server = serve(fair_judge)
    rows = manifest_rows(1)
    record = Record("r0", {"id": "r0", "prediction": "worth 7"}, 1)

    def judge(rows, record, model="test-model"):
        refs = load_references(write_jsonl(tmp_path / "m.jsonl", rows))
        client = make_client(server, cache_path=tmp_path / "cache.sqlite", model=model)
        return Judge(ARGS, client, refs).process(record).lines[0]["score"], server.count

    assert judge(rows, record) == (7, 1)
    assert judge(rows, record) == (7, 1)  # the same judgement again: from the cache
    assert judge([{**rows[0], "answer": "worth 7"}], record) == (10, 2)  # another reference
    assert judge([{**rows[0], "prompt": "What is heard?"}], record) == (7, 3)  # another question
    assert judge(rows, Record("r0", {"id": "r0", "prediction": "worth 4"}, 1)) == (4, 4)  # another answer
    assert judge(rows, record, model="judge-2") == (7, 5)  # another judge model
    assert judge(rows, record) == (7, 5)
