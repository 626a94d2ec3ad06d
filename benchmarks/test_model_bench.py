"""AF2 stage-1 training step (forward + backward): fused ops vs their eager twins.

Run: pytest benchmarks/test_model_bench.py
The same weights run with ``use_fused_ops(True)`` (af2's windowed RoPE in the audio
transformation, fused media cross-attention and gated residuals in every xattn block) and
``use_fused_ops(False)`` (the af2.reference twins). The step is a whole stage-1 step on a
collated-like batch: frozen AF-CLAP on the raw windows, trainable audio transformation, xattn
blocks and input embeddings, loss on the answer tokens; ``from dense`` starts from precomputed
AF-CLAP features (frozen in stage 1), isolating the part the fused ops touch. Sizes: ``tiny`` (the test preset) and
``medium`` (HTSAT width 256, audio transformation 4 heads of 64, Qwen2 hidden 512 x 4 layers,
xattn 8 heads of 64). Ratio = eager time / af2 time, printed at the end of the run.
"""

from __future__ import annotations

import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2
from af2.model.config import AudioTransformerConfig, CLAPConfig, XattnConfig
from af2.model.random_batch import random_lm_batch
from af2.text.tokens import tiny_tokenizer
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record

DEVICE = bench_device()


def _medium() -> AF2Config:
    tiny = AF2Config.preset("tiny")
    audio = dict(tiny.clap.audio, patch_embeds_hidden_size=128, num_attention_heads=[4, 8], hidden_size=256)
    llm = dict(
        tiny.llm,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
    )
    return AF2Config.preset(
        "tiny",
        name="medium",
        clap=CLAPConfig(audio=audio, text=tiny.clap.text, joint_dim=64),
        audio_transformer=AudioTransformerConfig(heads=4, ffn_dim=1024, rotary_dim=32),
        xattn=XattnConfig(heads=8, dim_head=64),
        llm=llm,
    )


SIZES = {"tiny": (lambda: AF2Config.preset("tiny"), 2, 2, 32), "medium": (_medium, 4, 3, 64)}  # cfg, B, W, S


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _step_case(size: str, tokenizer):
    make_cfg, B, W, S = SIZES[size]
    torch.manual_seed(0)
    model = AudioFlamingo2(make_cfg(), tokenizer=tokenizer).to(DEVICE).train()
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(0.5)
            block.ff_gate.fill_(0.5)
    model.set_stage("pretrain")
    batch = random_lm_batch(model, B=B, W=W, S=S, device=DEVICE)
    batch["audio_window_mask"][0, W - 1 :] = False  # one padded window
    return model, batch


@pytest.mark.parametrize("impl", ["af2", "eager"])
@pytest.mark.parametrize("audio", ["windows", "dense"])
@pytest.mark.parametrize("size", list(SIZES))
def test_stage1_train_step(benchmark, tokenizer, size, audio, impl):
    model, batch = _step_case(size, tokenizer)
    model.use_fused_ops(impl == "af2")
    if audio == "dense":  # AF-CLAP is frozen in stage 1: its features can be computed once
        with torch.no_grad():
            batch["dense_features"] = model.clap.dense_features(batch.pop("audio_windows"), batch["audio_window_mask"])
    params = model.trainable_parameters("pretrain")

    def run():
        loss = model(**batch).loss
        torch.autograd.grad(loss, params)
        sync(DEVICE)

    benchmark.group = f"af2 stage-1 step {size} from {audio} fp32 fwd+bwd {DEVICE.type}"
    benchmark.pedantic(run, warmup_rounds=2, rounds=5 if size == "medium" else 10, iterations=1)
    record(benchmark.group, impl, benchmark)


def test_tiny_forward(benchmark, tokenizer):
    """The tiny preset's inference forward on one 10-s window (target in docs/design.md: well under a second)."""
    model, _ = _step_case("tiny", tokenizer)
    model.eval()
    win = model.window_audio([torch.randn(16000 * 10)])
    ids, mask = model.encode_prompts(["How many beeps are there?"])

    def run():
        with torch.no_grad():
            model(
                input_ids=ids.to(DEVICE),
                attention_mask=mask.to(DEVICE),
                audio_windows=win.windows.to(DEVICE),
                audio_window_mask=win.mask.to(DEVICE),
            )
        sync(DEVICE)

    benchmark.group = f"af2 tiny forward, one 10-s window {DEVICE.type}"
    benchmark.pedantic(run, warmup_rounds=1, rounds=5, iterations=1)
