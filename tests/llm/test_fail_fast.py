"""A server that is not there stops the whole job at once (exit 2, one message), finished
records kept; transient faults keep their retries. Only 127.0.0.1 is ever contacted."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import openai
import pytest

from af2.errors import ServerUnreachable
from af2.llm import LLMConfig, RetriesExhausted, Unreachable
from af2.llm.client import LLMClient
from af2.llm.retry import Failure, classify
from tests.llm.conftest import make_client, read_jsonl, run_cli, run_module
from tests.llm.fake_llm import well_behaved
from tests.llm.server import error
from tests.llm.test_cli import CAPTIONS, write_input

MESSAGES = [{"role": "user", "content": "hi"}]


class ClosedPort:
    """A URL on 127.0.0.1 where nothing listens (the port was just bound and released)."""

    def __init__(self, scheme: str = "http"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}/v1"


def closed_client(sleeps: list, **overrides) -> LLMClient:
    return make_client(ClosedPort(), sleeps=sleeps, **overrides)


def test_connection_refused_stops_after_max_unreachable_requests():
    sleeps = []
    client = closed_client(sleeps, max_retries=6, concurrency=1)
    with pytest.raises(Unreachable, match="connection refused on 3 consecutive requests") as failure:
        client.complete(MESSAGES)
    assert isinstance(failure.value, ServerUnreachable) and len(sleeps) == 2  # 3 tries, not 7
    assert client.report().requests == 3
    with pytest.raises(Unreachable):  # every later call stops at once, without a request
        client.complete([{"role": "user", "content": "another"}])
    assert client.report().requests == 3


def test_max_unreachable_is_configurable():
    sleeps = []
    client = closed_client(sleeps, max_retries=6, max_unreachable=1)
    with pytest.raises(Unreachable, match="connection refused;"):
        client.complete(MESSAGES)
    assert sleeps == [] and client.report().requests == 1
    assert LLMConfig.from_env({"AF2_LLM_MAX_UNREACHABLE": "5"}).max_unreachable == 5


def test_tls_failure_is_unreachable(serve):
    server = serve(lambda index, body: error(500))  # plain HTTP: a TLS handshake cannot succeed
    client = make_client(server, sleeps=[], base_url=server.url.replace("http://", "https://"))
    with pytest.raises(Unreachable, match="TLS failure"):
        client.complete(MESSAGES)


def test_dns_failure_is_unreachable():
    try:
        import httpx
    except ImportError:  # openai builds on a renamed httpx in some releases
        import httpx2 as httpx

    exc = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    exc.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert classify(exc).unreachable.startswith("DNS failure")


def test_a_404_endpoint_stops_at_once(serve):
    server = serve(lambda index, body: error(404))
    client = make_client(server, sleeps=[])
    with pytest.raises(Unreachable, match="no such endpoint"):
        client.complete(MESSAGES)
    assert server.count == 1


def test_any_reply_resets_the_count():
    client = closed_client([], max_unreachable=3)
    down, reply = Failure(True, "unreachable", unreachable="connection refused"), Failure(True, "http_503", None, 503)
    for failure in (down, down, reply, down, down, None, down, down):
        client._track_reachability(failure)
    assert client._down is None
    client._track_reachability(down)
    assert "3 consecutive" in client._down


def test_5xx_and_timeouts_keep_their_retries(serve):
    server = serve(lambda index, body: error(503))
    sleeps = []
    client = make_client(server, sleeps=sleeps, max_retries=6, max_unreachable=1)
    with pytest.raises(RetriesExhausted):
        client.complete(MESSAGES)
    assert server.count == 7 and len(sleeps) == 6


def test_job_against_a_closed_port_exits_2_at_once_and_keeps_finished_records(serve, tmp_path):
    server = serve(well_behaved)
    inp, out = write_input(tmp_path, "captions.jsonl", CAPTIONS), tmp_path / "out" / "para.jsonl"
    first = run_cli("paraphrase", inp, out, server, "--m", "2", "--limit", "1")
    assert first.returncode == 1, first.stderr  # one done, two left pending by --limit
    done, cached = read_jsonl(out), server.count
    assert len(done) == 1

    closed = run_cli("paraphrase", inp, out, ClosedPort(), "--m", "2", "--max-retries", "6", "--concurrency", "1")
    assert closed.returncode == 2, closed.stderr
    stops = [line for line in closed.stderr.splitlines() if "stopped:" in line]
    assert len(stops) == 1 and "is not there: connection refused on 3 consecutive requests" in stops[0]
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["usage"]["requests"] == 3  # not 7 per record
    assert report["records"]["already_done"] == 1 and read_jsonl(out) == done

    again = run_cli("paraphrase", inp, out, server, "--m", "2")
    assert again.returncode == 0, again.stderr
    assert len(read_jsonl(out)) == 3 and server.count == cached + 2  # the finished one cost nothing


def test_judge_against_a_closed_port_exits_2(tmp_path):
    from tests.eval.conftest import manifest_rows, write_jsonl

    ref = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(3))
    pred = write_jsonl(tmp_path / "preds.jsonl", [{"id": f"r{i}", "prediction": "x"} for i in range(3)])
    out = tmp_path / "judged.jsonl"
    result = run_module(
        ["af2.eval", "judge", "--pred", str(pred), "--ref", str(ref), "--out", str(out)],
        ClosedPort(),
        "--concurrency",
        "2",
        "--max-retries",
        "6",
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("stopped:") == 1 and "is not there" in result.stderr
    assert json.loads(Path(f"{out}.report.json").read_text())["usage"]["requests"] <= 4
