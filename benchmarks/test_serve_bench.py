"""Server throughput on the CPU: generated tokens/s with 16 concurrent clients vs 1 client (the
gain of continuous batching; target >= 3x), and p50/p95 request latency.

Run: ``python -m pytest benchmarks/test_serve_bench.py -s`` (``AF2_BENCH_OUT=benchmarks/results``
also writes ``<device>-<date>-serve.json``, never overwriting one). ``af2 serve`` (its own
process; engine defaults but ``--max-batch-size 16``) serves a random-weight model saved with
save_pretrained, on 127.0.0.1; the clients are the ``openai`` package in threads of this process. Every request asks
for ``MAX_TOKENS`` tokens about its own 2-s clip; tokens are the ``usage.completion_tokens`` the
server reports (an answer may stop early at an end token: the same requests run in both cases).
Sizes: ``tiny`` (the test preset) and ``medium`` (benchmarks/test_model_bench.py's, Qwen2 hidden
512 x 4 layers). Each case warms up at batch 1 and 16 first, then runs 1 client and 16 clients in turn
``REPEATS`` times (medians reported, every run kept). Beside it, the same requests straight to an
Engine in this process (no HTTP): the gain the server's is bounded by.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from af2.model import AF2Config, AudioFlamingo2  # noqa: E402
from af2.text.tokens import tiny_tokenizer  # noqa: E402
from benchmarks.test_model_bench import _medium  # noqa: E402
from tests.serve.support import audio_message, encoded, wave  # noqa: E402
from tests.serve.test_serve_command import ROOT, Process  # noqa: E402

REQUESTS, MAX_TOKENS, CLIENTS, REPEATS = 32, 32, 16, 3
SIZES = {"tiny": lambda: AF2Config.preset("tiny"), "medium": _medium}
TARGET = 3.0
_ROWS: list[dict] = []


@pytest.fixture(scope="module", params=list(SIZES))
def served(request, tmp_path_factory):
    """``af2 serve`` in its own process (so the clients here do not share its interpreter) for a
    random-weight model of the size; yields (size, parameters, base url)."""
    torch.manual_seed(0)
    model = AudioFlamingo2(SIZES[request.param](), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    path = tmp_path_factory.mktemp(f"bench-{request.param}")
    model.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = ["--model", path, "--port", 0, "--device", "cpu", "--max-batch-size", CLIENTS]
    server = Process(*argv, "--max-new-tokens", MAX_TOKENS, "--served-model-name", "bench", env=env)
    try:
        url = "http://127.0.0.1:%s" % server.wait_for(r"listening on http://127\.0\.0\.1:(\d+)").group(1)
        server.wait_for(r"model loaded; ready", timeout=900)
        yield request.param, params, url, path
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=120)


def _run(client, requests: list, clients: int) -> dict:
    def ask(messages):
        start = time.perf_counter()
        reply = client.chat.completions.create(model="bench", messages=messages, max_tokens=MAX_TOKENS)
        return time.perf_counter() - start, reply.usage.completion_tokens

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(ask, requests))
    wall = time.perf_counter() - start
    latencies = sorted(t for t, _ in done)
    tokens = sum(n for _, n in done)
    return {
        "clients": clients,
        "requests": len(requests),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
    }


def test_throughput_16_clients_vs_1(served):
    size, params, url, path = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=900)
    requests = [audio_message(f"Describe clip {i}.", encoded(wave(2.0, seed=i))) for i in range(REQUESTS)]
    _run(client, requests[:2], 1)  # warm-up: batch 1, then every bucket up to 16
    _run(client, requests[:CLIENTS], CLIENTS)
    runs = [(_run(client, requests, 1), _run(client, requests, CLIENTS)) for _ in range(REPEATS)]
    one = _median_run([r[0] for r in runs])
    many = _median_run([r[1] for r in runs])
    gain = many["tokens_per_s"] / one["tokens_per_s"]
    row = {"size": size, "parameters": params, "one_client": one, "concurrent": many, "gain": round(gain, 2)}
    row["engine_alone"] = _engine_alone(path, requests)
    row["target"], row["met"] = TARGET, gain >= TARGET
    _ROWS.append(row)
    print(
        f"\nserve {size} ({params / 1e6:.1f} M params): 1 client {one['tokens_per_s']} tok/s "
        f"(p50 {one['latency_p50_s']} s, p95 {one['latency_p95_s']} s); {CLIENTS} clients "
        f"{many['tokens_per_s']} tok/s (p50 {many['latency_p50_s']} s, p95 {many['latency_p95_s']} s); "
        f"gain {gain:.2f}x (target {TARGET:g}x); the engine alone: gain {row['engine_alone']['gain']}x"
    )
    if len(_ROWS) == len(SIZES):
        _write(_ROWS)


def _median_run(runs: list[dict]) -> dict:
    """The run of median tokens/s, with every run's tokens/s beside it."""
    ranked = sorted(runs, key=lambda r: r["tokens_per_s"])
    return {**ranked[len(ranked) // 2], "tokens_per_s_runs": [r["tokens_per_s"] for r in runs]}


def _engine_alone(path, requests: list) -> dict:
    """The same requests straight to an Engine in this process (no HTTP), in turn and 16 at a
    time: what the server's gain is bounded by."""
    from af2.cli.serve import engine_loader
    from af2.serve.engine import EngineConfig
    from af2.serve.protocol import GenerationRequest, SamplingParams
    from tests.serve.support import decoded

    engine = engine_loader(path, "cpu", EngineConfig(max_batch_size=CLIENTS, max_new_tokens=MAX_TOKENS))().start()
    waves = [decoded(m[0]["content"][1]["input_audio"]["data"]) for m in requests]
    prompts = [m[0]["content"][0]["text"] for m in requests]
    runs = iter(range(10**6))

    def run(clients: int) -> float:
        start, tokens = time.perf_counter(), 0
        for k in range(0, len(requests), clients):
            handles = [
                engine.submit(
                    GenerationRequest(f"r{next(runs)}", p, w, rate, SamplingParams(max_new_tokens=MAX_TOKENS))
                )
                for p, (w, rate) in zip(prompts[k : k + clients], waves[k : k + clients])
            ]
            tokens += sum(h.result().completion_tokens for h in handles)
        return tokens / (time.perf_counter() - start)

    try:
        run(CLIENTS)
        runs = [(run(1), run(CLIENTS)) for _ in range(REPEATS)]
    finally:
        engine.shutdown()
    one, many = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    return {"one_tokens_per_s": round(one, 2), "concurrent_tokens_per_s": round(many, 2), "gain": round(many / one, 2)}


def _write(rows: list[dict]) -> None:
    out = os.environ.get("AF2_BENCH_OUT")
    if not out:
        return
    import af2
    from benchmarks.report import device_name, git_commit, results_path, write_report

    today = datetime.date.today().isoformat()
    report = {
        "device": device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "commit": git_commit(),
        "date": today,
        "note": os.environ.get("AF2_BENCH_NOTE", "") + f" [load average {os.getloadavg()[0]:.1f} at the end]",
        "build": af2.build_info(),
        "sections": ["serve"],
        "serve": {"requests": REQUESTS, "max_tokens": MAX_TOKENS, "clients": CLIENTS, "audio_seconds": 2.0},
        "results": rows,
    }
    path = results_path(Path(out), report["device"] + "-serve", today)
    write_report(path, report)
    print(f"wrote {path}")
    json.loads(path.read_text())
