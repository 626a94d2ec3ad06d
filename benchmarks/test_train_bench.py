"""Trainer throughput: samples/s of one stage-1 DeepSpeed step (forward, backward, clip, AdamW)
at tiny size on the CPU, with af2's fused ops and with their reference twins.

Run: pytest benchmarks/test_train_bench.py   (DS_ACCELERATOR=cpu, gloo, 1 process)
"""
from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import record

B, W, S = 2, 3, 32


@pytest.fixture(scope="module")
def engine():
    from training.config import SCHEMA, merge
    from training.engine import build_engine, setup_distributed
    from training.stages import StageModule, build_model, freeze_for_stage

    setup_distributed()
    cfg = merge(SCHEMA, {"deepspeed": {"precision": "fp32"}, "train": {"max_steps": 10 ** 6}})
    model = build_model(cfg)
    trainable, _ = freeze_for_stage(model, cfg)
    return build_engine(StageModule(model, cfg), trainable, cfg)


def _batch(model) -> dict:
    t = model.config.token_ids
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, t["audio"], (B, S), generator=g)
    ids[:, 0] = t["audio"]
    labels = torch.full_like(ids, -100)
    labels[:, S // 2:] = ids[:, S // 2:]
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool), labels=labels,
                audio_windows=0.1 * torch.randn(B, W, 160000, generator=g),
                audio_window_mask=torch.ones(B, W, dtype=torch.bool))


@pytest.mark.parametrize("impl", ["af2", "eager"])
def test_stage1_train_step(benchmark, engine, impl):
    model = engine.module.model
    model.use_fused_ops(impl == "af2")
    batch = _batch(model)

    def step():
        loss = engine(batch)
        engine.backward(loss)
        engine.step()
        return loss

    loss = benchmark(step)
    assert torch.isfinite(loss)
    benchmark.extra_info["samples_per_s"] = B / benchmark.stats.stats.median
    record(f"train stage-1 step tiny B={B} W={W}", impl, benchmark)
