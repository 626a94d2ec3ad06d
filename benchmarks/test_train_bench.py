"""Trainer throughput: samples/s of one stage-1 DeepSpeed step (forward, backward, clip, AdamW)
with af2's fused ops and with their reference twins.

Sizes: ``tiny`` (the tiny preset; CPU fp32, or bf16 on a GPU) and ``medium`` (GPU only: a
~0.1 B-parameter LLM, 8 decoder layers of width 1024, a wider HTSAT / audio transformation,
B=8 x 3 windows, 512 tokens, bf16).

Run: pytest benchmarks/test_train_bench.py   (CPU: DS_ACCELERATOR=cpu, gloo, 1 process)
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import record

SIZES = {"tiny": dict(B=2, W=3, S=32), "medium": dict(B=8, W=3, S=512)}
_ENGINES: dict = {}


def _medium_overrides() -> dict:
    from af2.model.config import AF2Config, AudioTransformerConfig, CLAPConfig, XattnConfig

    tiny = AF2Config.preset("tiny")
    audio = dict(
        AF2Config.preset("af2-3b").clap.audio,  # AF-CLAP's HTSAT, narrowed
        patch_embeds_hidden_size=128,
        depths=[2, 2],
        num_attention_heads=[4, 8],
        hidden_size=256,
        patch_size=16,
        patch_stride=[16, 16],
        num_classes=8,
        drop_path_rate=0.0,
    )
    llm = dict(
        tiny.llm,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        rope_theta=1000000.0,
    )
    return dict(
        name="medium",
        clap=CLAPConfig(audio=audio, text=tiny.clap.text, joint_dim=64),
        audio_transformer=AudioTransformerConfig(layers=3, heads=4, ffn_dim=1024, rotary_dim=32, rope_base=4096.0),
        xattn=XattnConfig(heads=8, dim_head=64),
        llm=llm,
    )


def _engine(size: str):
    if size in _ENGINES:
        return _ENGINES[size]
    from training.config import SCHEMA, merge
    from training.engine import build_engine, setup_distributed
    from training.stages import StageModule, build_model, freeze_for_stage

    setup_distributed()
    precision = "auto" if torch.cuda.is_available() else "fp32"  # bf16 on a GPU
    cfg = merge(SCHEMA, {"deepspeed": {"precision": precision}, "train": {"max_steps": 10**6}})
    if size == "medium":
        cfg["model"]["overrides"] = _medium_overrides()
    model = build_model(cfg)
    trainable, _ = freeze_for_stage(model, cfg)
    _ENGINES[size] = build_engine(StageModule(model, cfg), trainable, cfg)
    return _ENGINES[size]


@pytest.mark.parametrize("impl", ["af2", "eager"])
@pytest.mark.parametrize("size", ["tiny", "medium"])
def test_stage1_train_step(benchmark, size, impl):
    if size == "medium" and not torch.cuda.is_available():
        pytest.skip("medium: GPU only")
    engine = _engine(size)
    model = engine.module.model
    model.use_fused_ops(impl == "af2")
    from af2.model.random_batch import random_lm_batch

    shape = SIZES[size]
    batch = random_lm_batch(model, **shape, device=engine.device)

    def step():
        loss = engine(batch)
        engine.backward(loss)
        engine.step()
        return loss

    loss = benchmark(step)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    assert torch.isfinite(loss)
    if benchmark.stats is not None:  # None under --benchmark-disable (one untimed call)
        benchmark.extra_info["samples_per_s"] = shape["B"] / benchmark.stats.stats.median
    record(f"train stage-1 step {size} B={shape['B']} W={shape['W']} S={shape['S']}", impl, benchmark)
