"""Decoding speed: the continuous-batching engine (af2.serve.engine) vs ``model.generate``.

Run: pytest benchmarks/test_engine_bench.py [--benchmark-disable]
     AF2_BENCH_OUT=benchmarks/results pytest benchmarks/test_engine_bench.py   (also writes the JSON)

B requests (one 1-s clip each, short prompts) answered with N new tokens each (the end tokens
are suppressed, so every request decodes exactly N), by the engine (``max_batch_size`` = B, eager
step) and by one batched ``model.generate`` call. The decode time per step is
(T(N) - T(1)) / (N - 1), which leaves out the audio path, the prefill and the preprocessing:
``ms/token`` is that time (each request gets one token per step), ``tokens/s`` = B / that time.
The B requests are queued together (``submit_many``), so the engine admits them in one step as
generate takes its batch. ``engine-compiled``: the step under torch.compile (tiny only on the CPU).
Sizes: ``tiny`` (the test preset) and ``small`` (Qwen2 hidden 1024 x 12 layers, xattn blocks of
8 heads x 64 before each, ~250M parameters, float32). Next to each figure: the weight-read limit,
the bytes the decode step reads (decoder layers, final norm, LM head, the blocks without their
media projection) over this machine's copy bandwidth measured in the same run, and the ratio.
Target: engine >= 2x generate at batch 8.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2
from af2.model.config import XattnConfig
from af2.serve.engine import Engine, EngineConfig
from af2.serve.protocol import GenerationRequest, SamplingParams
from af2.text.tokens import tiny_tokenizer
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()
BATCHES = (1, 8, 32)
PROMPTS = ["How many beeps?", "Which instrument plays?", "Describe the sound.", "Is it loud?"]


def _small() -> AF2Config:
    tiny = AF2Config.preset("tiny")
    llm = dict(
        tiny.llm,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=12,
        num_attention_heads=16,
        num_key_value_heads=4,
    )
    return AF2Config.preset("tiny", name="small", xattn=XattnConfig(heads=8, dim_head=64), llm=llm)


SIZES = {"tiny": (lambda: AF2Config.preset("tiny"), 32, 3), "small": (_small, 8, 1)}  # cfg, N, rounds
_MODELS: dict = {}
_ROWS: list = []


def _model(size: str):
    if size not in _MODELS:
        torch.manual_seed(0)
        model = AudioFlamingo2(SIZES[size][0](), tokenizer=tiny_tokenizer()).eval().to(DEVICE)
        with torch.no_grad():
            for block in model.xattn.values():
                block.attn_gate.fill_(0.5)
                block.ff_gate.fill_(0.5)
        _MODELS[size] = model
    return _MODELS[size]


def _inputs(B: int):
    g = np.random.default_rng(0)
    audio = [(0.1 * g.standard_normal(16000)).astype(np.float32) for _ in range(B)]
    return [PROMPTS[i % len(PROMPTS)] for i in range(B)], audio


def decode_weight_bytes(model) -> int:
    """Bytes of the weights one decode step reads: decoder layers, final norm, LM head and the
    xattn blocks without their media projection (to_kv; the media keys/values are cached)."""
    llm = model.llm
    params = {id(p): p for p in llm.model.layers.parameters()}
    params.update({id(p): p for p in llm.model.norm.parameters()})
    params[id(llm.lm_head.weight)] = llm.lm_head.weight
    for block in model.xattn.values():
        params.update({id(p): p for n, p in block.named_parameters() if "to_kv" not in n})
    return sum(p.numel() * p.element_size() for p in params.values())


def copy_gbps() -> float:
    """This device's copy bandwidth (bytes read + written per second / 1e9), 64 MiB of bf16."""
    src = torch.randn(1 << 25, device=DEVICE).to(torch.bfloat16)
    dst = torch.empty_like(src)
    times = []
    for _ in range(10):
        sync(DEVICE)
        t = time.perf_counter()
        dst.copy_(src)
        sync(DEVICE)
        times.append(time.perf_counter() - t)
    return 2 * src.numel() * 2 / statistics.median(times) / 1e9


def _engine_run(model, B: int, N: int, compile: bool = False):
    config = EngineConfig(
        max_batch_size=B,
        max_new_tokens=N,
        max_prompt_tokens=48,
        max_seq_len=48 + N,
        compile=compile,
        batch_buckets=(B,),  # every step runs all B rows: one graph to compile
    )
    engine = Engine(model, model.processor, config).start()
    engine.suppress = sorted({*engine.suppress, *engine.stop_ids})  # exactly N tokens each
    engine.stop_ids = frozenset()
    prompts, audio = _inputs(B)

    def run(n: int) -> float:
        t = time.perf_counter()
        handles = engine.submit_many(  # queued together: admitted in one step, as generate's batch
            [GenerationRequest(f"r{i}", p, a, params=SamplingParams(n)) for i, (p, a) in enumerate(zip(prompts, audio))]
        )
        fins = [h.result() for h in handles]
        assert all(f.completion_tokens == n for f in fins)
        return time.perf_counter() - t

    return run, engine.shutdown


def _generate_run(model, B: int, N: int):
    prompts, audio = _inputs(B)
    processor = model.processor

    def run(n: int) -> float:
        t = time.perf_counter()
        enc = processor(text=prompts, audio=audio)
        enc = {k: v.to(DEVICE) for k, v in enc.items() if k != "truncated"}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        sync(DEVICE)
        assert out.shape[1] == enc["input_ids"].shape[1] + n
        return time.perf_counter() - t

    return run, lambda: None


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if not _ROWS:
        return
    lines = ["", "decoding engine vs generate (ms per generated token per request, decode steps only):"]
    for r in _ROWS:
        lines.append(
            f"  {r['size']:<6} B={r['B']:<3} {r['impl']:<9} {r['ms_per_token']:9.2f} ms/token "
            f"{r['tokens_per_s']:9.1f} tok/s  weight-read limit {r['weight_read_limit_ms']:.2f} ms "
            f"-> {r['ms_per_token'] / r['weight_read_limit_ms']:.1f}x the limit"
        )
    by = {(r["size"], r["B"], r["impl"]): r for r in _ROWS}
    for (size, B, impl), r in sorted(by.items()):
        if impl.startswith("engine") and (size, B, "generate") in by:
            gen = by[(size, B, "generate")]
            r["speedup_vs_generate"] = round(gen["ms_per_token"] / r["ms_per_token"], 2)
            lines.append(f"  {size} B={B}: {impl} {r['speedup_vs_generate']:.2f}x generate (target 2x at B=8)")
    print("\n".join(lines))
    out = os.environ.get("AF2_BENCH_OUT")
    if out:
        _write_results(Path(out))


def _write_results(out_dir: Path) -> None:
    import json

    import af2
    from benchmarks.report import device_name, git_commit, results_path, write_report

    name = device_name(DEVICE)
    today = dt.date.today().isoformat()
    info = af2.build_info()
    path = results_path(out_dir, f"{name}-engine", today)
    write_report(
        path,
        {
            "device": name,
            "torch": torch.__version__,
            "commit": git_commit(),
            "date": today,
            "note": os.environ.get("AF2_BENCH_NOTE", ""),
            "cpu_isa": info.get("cpu_isa"),
            "build": info,
            "ceilings": {"copy_GBps": round(_ROWS[0]["copy_GBps"], 2)},
            "results": _ROWS,
        },
    )
    print(f"wrote {path}")
    json.loads(path.read_text())


@pytest.mark.parametrize("impl", ["engine", "engine-compiled", "generate"])
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("size", list(SIZES))
def test_decode_ms_per_token(benchmark, size, B, impl):
    if impl == "engine-compiled" and (size != "tiny" or DEVICE.type != "cpu"):
        pytest.skip("the compiled step on the CPU: tiny only (compiling a larger step takes minutes per batch size)")
    model = _model(size)
    _, N, rounds = SIZES[size]
    if impl == "generate":
        run, close = _generate_run(model, B, N)
    else:
        run, close = _engine_run(model, B, N, compile=impl == "engine-compiled")
    try:
        run(2)  # warm-up
        ones = [run(1) for _ in range(rounds)]
        benchmark.group = f"af2 decode {size} B={B} N={N} fp32 {DEVICE.type}"
        benchmark.pedantic(lambda: run(N), rounds=rounds, iterations=1)
    finally:
        close()
    if benchmark.stats is None:
        return
    t_n, t_1 = benchmark.stats.stats.median, statistics.median(ones)
    step = max(t_n - t_1, 1e-9) / (N - 1)
    gbps = copy_gbps()
    weights = decode_weight_bytes(model)
    record(benchmark.group, "af2" if impl == "engine" else impl, benchmark)
    _ROWS.append(
        {
            "size": size,
            "B": B,
            "impl": impl,
            "new_tokens": N,
            "rounds": rounds,
            "params": sum(p.numel() for p in model.parameters()),
            "ms_per_token": round(step * 1e3, 3),
            "tokens_per_s": round(B / step, 1),
            "end_to_end_s": round(t_n, 3),
            "decode_weight_MB": round(weights / 1e6, 1),
            "copy_GBps": round(gbps, 2),
            "weight_read_limit_ms": round(weights / (gbps * 1e9) * 1e3, 3),
        }
    )
