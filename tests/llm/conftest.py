"""Fixtures of the LLM tests: a scripted server per test, and a client with tiny backoffs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from af2.llm import LLMClient, LLMConfig, ResponseCache
from tests.llm.server import ScriptedServer

KEY = "sk-test-0123456789-DO-NOT-LEAK"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve():
    """``serve(responder)`` starts a ScriptedServer that is stopped after the test."""
    servers = []

    def start(responder, **kwargs) -> ScriptedServer:
        servers.append(ScriptedServer(responder, **kwargs).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def make_client(
    server: ScriptedServer, *, cache_path=None, sleeps: list | None = None, clock=None, **overrides
) -> LLMClient:
    """A client of ``server``; ``sleeps`` collects the delays it sleeps (then it does not sleep);
    ``clock`` (callable, with a ``sleep`` method) replaces time for the rate limiter and the sleeps."""
    settings = dict(
        base_url=server.url,
        model="test-model",
        api_key=KEY,
        timeout=5.0,
        max_retries=3,
        backoff_base=0.001,
        backoff_max=0.004,
        concurrency=4,
        max_repairs=2,
    )
    config = LLMConfig(**{**settings, **overrides})
    cache = ResponseCache(cache_path) if cache_path else None
    if clock is not None:
        return LLMClient(config, cache=cache, clock=clock, sleep=clock.sleep)
    return LLMClient(config, cache=cache, sleep=sleeps.append if sleeps is not None else time.sleep)


def run_cli(
    command: str, inp: Path, out: Path, server: ScriptedServer, *extra: str, wait: bool = True, **env
) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python -m af2.data.llm COMMAND`` against ``server``, the key in the environment (OUT's
    folder is created first: the command refuses an output path in a missing folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return run_module(["af2.data.llm", command, "--in", str(inp), "--out", str(out)], server, *extra, wait=wait, **env)


def run_module(
    argv: list[str], server: ScriptedServer, *extra: str, wait: bool = True, **env
) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python -m ARGV`` with the client flags for ``server`` (tiny backoffs), then ``extra``."""
    argv = [
        sys.executable,
        "-m",
        *argv,
        "--base-url",
        server.url,
        "--backoff-base",
        "0.001",
        "--backoff-max",
        "0.004",
        *extra,
    ]
    environ = {**os.environ, "AF2_LLM_API_KEY": KEY, "AF2_LLM_MODEL": "test-model", "PYTHONPATH": str(ROOT), **env}
    if not wait:
        return subprocess.Popen(argv, env=environ, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(argv, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120)


def kill_when_requested(proc: subprocess.Popen, server: ScriptedServer, requests: int) -> None:
    """SIGKILL ``proc`` once ``server`` has seen ``requests`` requests (it fails if it never does)."""
    try:
        assert server.wait_for(requests, timeout=60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
