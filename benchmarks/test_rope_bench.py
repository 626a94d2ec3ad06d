"""Windowed RoPE microbenchmarks: af2.ops.rope_windowed vs the eager HF-style reference.

Run: pytest benchmarks/test_rope_bench.py   (on the CPU, or on a GPU with a CUDA build)
Shapes: the AF2 audio-transformer shape (B=8, S=1920 = 30 windows x 64 tokens, H=8, D=256,
rotary_dim=128) and a small one. Targets (docs/design.md): CPU fwd+bwd >= 3x eager; GPU bf16 >= 3x
eager and >= 80% of the measured copy bandwidth (see benchmarks/report.py for the latter).
"""

from __future__ import annotations

import pytest
import torch

from af2 import reference as R
from af2.ops import rope_windowed
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()
SHAPES = {"af2": (8, 1920, 8, 256, 128, 64), "small": (2, 192, 8, 64, 64, 64)}  # B, S, H, D, rd, window
DTYPES = [torch.bfloat16] if DEVICE.type == "cuda" else [torch.float32, torch.bfloat16]
IMPLS = {"af2": rope_windowed, "eager": R.rope_windowed}
TARGET = 3.0


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_rope_windowed(benchmark, shape, dtype, mode, impl):
    B, S, H, D, rd, ws = SHAPES[shape]
    torch.manual_seed(0)
    x = torch.randn(B, S, H, D, device=DEVICE, dtype=dtype, requires_grad=(mode == "fwd+bwd"))
    g = torch.randn_like(x)
    fn = IMPLS[impl]

    def run():
        y = fn(x, window_size=ws, rotary_dim=rd)
        if mode == "fwd+bwd":
            torch.autograd.grad(y, x, g)
        sync(DEVICE)

    benchmark.group = f"rope_windowed {shape} {str(dtype)[6:]} {mode} {DEVICE.type}"
    # Warm-up matters on VMs: the first touches of fresh memory are far slower than later ones.
    benchmark.pedantic(run, warmup_rounds=3, rounds=7 if shape == "af2" else 50, iterations=1)
    record(benchmark.group, impl, benchmark, target=TARGET)
