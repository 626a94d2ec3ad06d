"""GatedCrossAttentionBlock microbenchmark: the fused block (af2's media attention + fused gated
residuals) against the same block on the eager twins (dense-mask attention, plain residuals).

CPU size: dim 512 (AF2 uses 2048, too slow for a 2-core benchmark), 8 heads x 64, FFN x4,
B = 4, Lq = 512, one audio of 576 tokens (9 windows) per sample, the last 2 windows padded.
On a GPU: AF2's dim 2048 in bf16. Target (docs/design.md, GPU): block fwd+bwd >= 1.5x the eager block.
"""

from __future__ import annotations

import pytest
import torch

from af2.nn import GatedCrossAttentionBlock
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()
DIM = 2048 if DEVICE.type == "cuda" else 512
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32


@pytest.mark.parametrize("impl", ["af2", "eager"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_gated_xattn_block(benchmark, mode, impl):
    torch.manual_seed(0)
    B, Lq, n = 4, 512, 576
    block = GatedCrossAttentionBlock(DIM, DIM, heads=8, dim_head=64, fused=impl == "af2").to(DEVICE, DTYPE)
    with torch.no_grad():
        block.attn_gate.fill_(0.5)
        block.ff_gate.fill_(0.5)
    x = torch.randn(B, Lq, DIM, device=DEVICE, dtype=DTYPE, requires_grad=mode == "fwd+bwd")
    media = torch.randn(B, 1, n, DIM, device=DEVICE, dtype=DTYPE)
    mask = torch.ones(B, 1, n, dtype=torch.bool, device=DEVICE)
    mask[:, :, 448:] = False
    loc = torch.zeros(B, Lq, dtype=torch.bool, device=DEVICE)
    loc[:, 0] = True

    def run():
        out = block(x, media, loc, mask)
        if mode == "fwd+bwd":
            out.sum().backward()
        sync(DEVICE)

    benchmark.group = f"gated_xattn_block dim{DIM} {str(DTYPE)[6:]} {mode} {DEVICE.type}"
    benchmark.pedantic(run, warmup_rounds=1, rounds=3 if DEVICE.type == "cpu" else 20, iterations=1)
    record(benchmark.group, impl, benchmark, target=1.5)
