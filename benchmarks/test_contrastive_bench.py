"""Contrastive loss microbenchmarks: af2 (tiled, O(B) memory) vs the eager full-logits loss.

Shapes (docs/design.md): M = 2 positives, N = 3 negatives, D = 512, B in {1024, 4096} here (B = 8192
and the memory figures are measured by benchmarks/report.py). Target on the CPU: >= 1.2x eager
speed and <= 1/10 of eager peak memory at B = 8192.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from af2 import reference as R
from af2.ops import contrastive_loss
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()
IMPLS = {"af2": contrastive_loss, "eager": R.contrastive_loss}


# bf16 runs the tensor-core kernels on CUDA (float32 the SIMT ones); on the CPU float32 only.
DTYPES = [torch.float32] + ([torch.bfloat16] if DEVICE.type == "cuda" else [])


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B", [1024, 4096])
def test_contrastive_loss(benchmark, B, dtype, impl):
    torch.manual_seed(0)
    unit = lambda *s: F.normalize(torch.randn(*s, device=DEVICE), dim=-1).to(dtype).requires_grad_()
    a, t, h = unit(B, 512), unit(B, 2, 512), unit(B, 2, 3, 512)
    fn = IMPLS[impl]

    def run():
        fn(a, t, logit_scale=10.0, hard_negatives=h).backward()
        sync(DEVICE)

    benchmark.group = f"contrastive_loss B{B} M2 N3 D512 fwd+bwd {DEVICE.type}" + (
        "" if dtype == torch.float32 else f" {str(dtype)[6:]}"
    )
    benchmark.pedantic(run, warmup_rounds=1, rounds=3 if B <= 1024 else 1, iterations=1)
    record(benchmark.group, impl, benchmark, target=1.2)
