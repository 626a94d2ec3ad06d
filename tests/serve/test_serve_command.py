"""``af2 serve`` as a process: bad usage is one line and status 2 before anything loads; under
load, SIGTERM lets the requests in flight finish with their whole answers and exits 0; one JSON
log line per request, and the API key (from AF2_API_KEY) never in the output, even at DEBUG."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.cli.conftest import bad_input
from tests.serve.support import audio_message, encoded, wave

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-never-logged-5b8e1d"


def test_bad_usage_is_status_2_and_loads_nothing(af2, tmp_path, model_dir):
    bad_input(af2("serve", "--model", tmp_path / "nope"), "--model", "no such directory")
    (tmp_path / "empty").mkdir()
    bad_input(af2("serve", "--model", tmp_path / "empty"), "--model", "config.json")
    bad_input(af2("serve", "--model", model_dir, "--port", "-1"), "--port")
    bad_input(af2("serve", "--model", model_dir, "--max-audio-seconds", "0"), "--max-audio-seconds")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bad_input(af2("serve", "--model", model_dir, "--port", port), f"--port {port}", "cannot listen")


def test_without_the_serve_extra_it_names_the_extra(af2, model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    bad_input(af2("serve", "--model", model_dir), "needs fastapi", "pip install 'af2[serve]'")


def test_a_model_that_fails_to_load_stops_the_server_with_status_2(af2, tmp_path, model_dir):
    import logging
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not safetensors")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = af2("serve", "--model", broken, "--port", 0, "--device", "cpu", "--log-level", "ERROR")
    finally:
        root.handlers[:], root.level = handlers, level
    assert result.code == 2, result
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("af2 serve: error: --model") and "failed to load" in last, result.err


class Process:
    """``af2 serve`` in a subprocess; its stderr lines are collected as they come."""

    def __init__(self, *argv, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "af2", "serve", *map(str, argv)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.02)

    def count(self, pattern: str) -> int:
        return sum(bool(re.search(pattern, line)) for line in list(self.lines))


@pytest.mark.slow  # a fresh process imports torch and transformers and loads the model
def test_sigterm_under_load_finishes_the_requests_in_flight_and_exits_0(model_dir):
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "AF2_API_KEY": KEY, "PYTHONPATH": path}
    server = Process(
        "--model", model_dir, "--port", 0, "--device", "cpu", "--max-batch-size", 4, "--max-new-tokens", 64,
        "--no-compile", "--log-level", "DEBUG", "--served-model-name", "tiny", env=env,
    )  # fmt: skip
    try:
        url = "http://127.0.0.1:%s" % server.wait_for(r"listening on http://127\.0\.0\.1:(\d+)").group(1)
        deadline = time.monotonic() + 120
        while httpx.get(url + "/health").status_code != 200:
            assert time.monotonic() < deadline and server.proc.poll() is None, "".join(server.lines)
            time.sleep(0.05)
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)

        def ask(i):  # 6 requests for 4 slots: 2 wait in the queue
            data = encoded(wave(1.0 + i, seed=40 + i))
            args = dict(model="tiny", messages=audio_message(f"Sound {i}?", data), max_tokens=64)
            if i % 2:
                reply = client.chat.completions.create(**args)
                return reply.choices[0].finish_reason, reply.usage.completion_tokens
            chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
            return [c.choices[0].finish_reason for c in chunks if c.choices][-1], chunks[-1].usage.completion_tokens

        with ThreadPoolExecutor(6) as pool:
            answers = [pool.submit(ask, i) for i in range(6)]
            deadline = time.monotonic() + 60
            while server.count(r"submitted chatcmpl-") < 6:
                assert time.monotonic() < deadline, "".join(server.lines)
                time.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            results = [a.result(timeout=120) for a in answers]
        assert server.proc.wait(timeout=60) == 0, "".join(server.lines)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    for reason, tokens in results:  # whole answers: to an end token or to max_tokens
        assert reason == "stop" or (reason == "length" and tokens == 64), results
    output = "".join(server.lines)
    assert KEY not in output
    logged = [line for line in server.lines if " af2.serve.requests: " in line]
    records = [json.loads(line.split(" af2.serve.requests: ", 1)[1]) for line in logged]
    assert sorted(r["status"] for r in records) == [200] * 6, output
    fields = {"id", "audio_seconds", "prompt_tokens", "completion_tokens", "queue_s", "ttft_s", "total_s"}
    assert all(fields <= set(r) for r in records)
    # in flight when the signal came: answered after uvicorn began its shutdown
    shutdown = next(i for i, line in enumerate(server.lines) if "Shutting down" in line)
    assert any(server.lines.index(line) > shutdown for line in logged), output
    assert "af2 serve: stopped" in output
