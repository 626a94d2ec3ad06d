"""Media cross-attention microbenchmarks: af2 vs eager masked softmax, SDPA with a boolean mask,
and unmasked SDPA (a yardstick of kernel quality; it does twice the work here).

Targets (docs/design.md), CPU (fp32 and bf16, fwd and fwd+bwd): >= 1.3x SDPA with a mask, >= 1.0x unmasked SDPA,
>= 1.5x eager; GPU (bf16): fwd+bwd >= 1.5x SDPA with a mask, >= 0.8x unmasked SDPA flash. Peak
memory and the fraction of the GEMM rate are measured by benchmarks/report.py, which also times
the implementations in turns (the ratios here come from sequential runs).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.cases import MEDIA_ATTN_SHAPES, media_attn_case, media_attn_impls
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()
DTYPES = [torch.bfloat16] if DEVICE.type == "cuda" else [torch.float32, torch.bfloat16]
IMPLS = ["af2", "eager", "sdpa_mask", "sdpa_nomask"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", list(MEDIA_ATTN_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_media_cross_attention(benchmark, dtype, shape, mode, impl):
    q, k, v, ks, ke, pad = media_attn_case(
        **MEDIA_ATTN_SHAPES[shape], device=DEVICE, dtype=dtype, requires_grad=mode == "fwd+bwd"
    )
    fn = media_attn_impls(q, k, v, ks, ke, pad)[impl]
    g = torch.randn(q.shape, device=DEVICE, dtype=dtype)

    def run():
        out = fn()
        if mode == "fwd+bwd":
            torch.autograd.grad(out, (q, k, v), g)
        sync(DEVICE)

    benchmark.group = f"media_cross_attention {shape} {str(dtype)[6:]} {mode} {DEVICE.type}"
    benchmark.pedantic(run, warmup_rounds=2, rounds=5 if DEVICE.type == "cpu" else 30, iterations=1)
    record(benchmark.group, impl, benchmark, target=1.5)  # the target printed is vs eager
