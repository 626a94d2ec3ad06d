"""``python -m af2.eval judge`` end to end: summary, reruns and the cache, a SIGKILL and resume, the key."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.eval.conftest import write_jsonl
from tests.eval.fake_judge import fair_judge
from tests.llm.conftest import KEY, kill_when_requested, read_jsonl, run_module
from tests.llm.server import Reply
from tests.llm.test_cli import assert_secret_kept

PREDS = [
    {"id": "r0", "prediction": "event 0 happens"},
    {"id": "r1", "prediction": "worth 4"},
    {"id": "r2", "prediction": "worth 6"},
    {"id": "r3", "prediction": "worth 2"},
    {"id": "r4", "prediction": "no idea"},
    {"id": "ghost", "prediction": "worth 9"},
]  # r5: no prediction


def judge_cli(pred: Path, ref: Path, out: Path, server, *extra: str, wait: bool = True):
    out.parent.mkdir(parents=True, exist_ok=True)
    return run_module(
        ["af2.eval", "judge", "--pred", str(pred), "--ref", str(ref), "--out", str(out)], server, *extra, wait=wait
    )


def table_rows(stdout: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in stdout.splitlines() if line[:1].isalpha()}


def test_judge_end_to_end_then_reruns_cost_nothing(serve, tmp_path, refs):
    server = serve(fair_judge)
    pred, out = write_jsonl(tmp_path / "in" / "preds.jsonl", PREDS), tmp_path / "out" / "judged.jsonl"
    result = judge_cli(pred, refs, out, server, "--log-level", "DEBUG")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["temporal_reasoning"] == ["temporal_reasoning", "2", "2", "0", "0", "0", "6.00"]  # r0 10, r3 2
    assert rows["untagged"] == ["untagged", "1", "0", "0", "0", "1", "-"]  # r5 has no prediction
    assert rows["all"] == ["all", "6", "5", "0", "0", "1", "4.60"]  # (10 + 4 + 6 + 2 + 1) / 5
    assert "5 scored (0 by the fallback parser), 0 rejected" in result.stderr
    assert "1 prediction lines match no reference" in result.stderr and "requests sent 5" in result.stderr
    lines = read_jsonl(out)
    assert sorted(line["id"] for line in lines) == ["r0", "r1", "r2", "r3", "r4"]
    assert [r["source_id"] for r in read_jsonl(Path(f"{out}.rejects.jsonl"))] == ["ghost"]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["summary"]["overall"]["mean_score"] == 4.6 and report["records"]["ok"] == 5
    assert report["summary"]["by_skill"]["counting"]["mean_score"] == 2.5 and report["usage"]["requests"] == 5
    sent = server.requests[0]
    assert sent["temperature"] == 0.0 and sent["response_format"] == {"type": "json_object"}
    assert sent["model"] == "test-model" and '"reference": "event' in sent["messages"][1]["content"]
    assert_secret_kept(result, out.parent)

    before = out.read_bytes()
    rerun = judge_cli(pred, refs, out, server)  # everything is done: no request, nothing written
    assert rerun.returncode == 0 and server.count == 5 and out.read_bytes() == before
    assert table_rows(rerun.stdout)["all"] == rows["all"]

    out.unlink()  # the results are lost, the replies are not: judged again from the cache
    Path(f"{out}.rejects.jsonl").unlink()
    regen = judge_cli(pred, refs, out, server)
    assert regen.returncode == 0 and server.count == 5
    assert sorted(out.read_bytes().splitlines()) == sorted(before.splitlines())
    assert json.loads(Path(f"{out}.report.json").read_text())["usage"]["cache_hits"] == 5

    other = judge_cli(
        pred, refs, tmp_path / "out2" / "judged.jsonl", server, "--model", "judge-2", "--cache", f"{out}.cache.sqlite"
    )  # the same cache, another judge: asked again
    assert other.returncode == 0 and server.count == 10 and server.requests[-1]["model"] == "judge-2"


def test_judge_killed_in_the_middle_resumes_without_loss_or_duplicates(serve, tmp_path):
    n, held = 12, 5  # predictions; requests answered before the server starts holding them
    ref = write_jsonl(
        tmp_path / "in" / "manifest.jsonl",
        [{"id": f"k{i}", "audio": f"{i}.wav", "prompt": f"Q{i}?", "answer": f"A{i}"} for i in range(n)],
    )
    pred = write_jsonl(
        tmp_path / "in" / "preds.jsonl", [{"id": f"k{i}", "prediction": f"worth {i % 10 + 1}"} for i in range(n)]
    )
    out = tmp_path / "out" / "judged.jsonl"
    server = serve(fair_judge)
    server.hang_after = held
    proc = judge_cli(pred, ref, out, server, "--concurrency", "2", wait=False)
    # Both workers are blocked on held requests: every answered reply has been handled.
    kill_when_requested(proc, server, held + 2)
    killed = Counter(line["id"] for line in read_jsonl(out))
    assert len(killed) == held < n and set(killed.values()) == {1}  # it really stopped in the middle
    with out.open("ab") as f:  # and its last write was torn
        f.write(b'{"id": "k999", "score": 3, "provenance": {"sour')

    server.release()
    resumed = judge_cli(pred, ref, out, server, "--concurrency", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "torn last line" in resumed.stderr
    lines = read_jsonl(out)
    assert Counter(line["id"] for line in lines) == Counter(f"k{i}" for i in range(n))  # none lost, none twice
    assert {line["id"]: line["score"] for line in lines} == {f"k{i}": i % 10 + 1 for i in range(n)}
    assert not Path(f"{out}.rejects.jsonl").read_text()
    assert len(server.answered) == n and len(set(server.answered)) == n  # no judgement was bought twice
    assert server.count == n + 2  # only the two held (never answered) requests were sent again
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["records"]["already_done"] == held and report["usage"]["requests"] == n - held
    overall = report["summary"]["overall"]
    assert (overall["scored"], overall["pending"]) == (n, 0)
    assert overall["mean_score"] == sum(i % 10 + 1 for i in range(n)) / n


def test_a_fatal_error_stops_the_judge_and_a_flag_key_stays_secret(serve, tmp_path, refs):
    servers = []

    def refuse_and_echo_the_key(index: int, body: dict) -> Reply:  # as OpenAI's 401 does
        auth = servers[0].headers[index]["authorization"]
        return Reply(401, {"error": {"message": f"Incorrect API key provided: {auth}", "type": "test"}})

    server = serve(refuse_and_echo_the_key)
    servers.append(server)
    pred, out = write_jsonl(tmp_path / "in" / "preds.jsonl", PREDS), tmp_path / "out" / "judged.jsonl"
    flag_key = KEY + "-FROM-FLAG"
    result = judge_cli(pred, refs, out, server, "--concurrency", "1", "--api-key", flag_key, "--log-level", "DEBUG")
    assert result.returncode == 2 and "stopped" in result.stderr and server.count == 1
    assert server.headers[0]["authorization"] == f"Bearer {flag_key}"
    assert read_jsonl(out) == []
    summary = json.loads(Path(f"{out}.report.json").read_text())["summary"]["overall"]
    assert (summary["scored"], summary["pending"], summary["mean_score"]) == (0, 5, None)
    assert "Incorrect API key provided: Bearer ***" in result.stderr  # the message is logged, the key is not
    assert_secret_kept(result, out.parent)
