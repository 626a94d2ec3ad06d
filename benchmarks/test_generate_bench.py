"""``model.generate`` (transformers' GenerationMixin) vs af2's earlier hand-written greedy loop.

Run: pytest benchmarks/test_generate_bench.py
Greedy decoding of N new tokens after a prompt of P tokens with one 10-s window of audio per
sample, batch B = 1 and 8, on the ``tiny`` test preset and a ~140M-parameter config (Qwen2 hidden
768 x 12 layers, xattn 8 heads of 64 before each); fp32, CPU or the benchmark device. Both run
the same weights and produce the same tokens (checked once per case); the time covers the whole
call (audio path, prefill and N steps). Ratio = earlier loop time / generate time: the target is
>= 0.95 (generate no slower).
"""

from __future__ import annotations

import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2
from af2.model.config import XattnConfig
from af2.text.tokens import tiny_tokenizer
from benchmarks.common import bench_device, sync
from benchmarks.conftest import record
from benchmarks.earlier_decoding import greedy_loop

DEVICE = bench_device()
P, N = 16, 32  # prompt tokens, new tokens


def _m140() -> AF2Config:
    tiny = AF2Config.preset("tiny")
    llm = dict(
        tiny.llm,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=2,
    )
    return AF2Config.preset("tiny", name="m140", llm=llm, xattn=XattnConfig(heads=8, dim_head=64))


SIZES = {"tiny": lambda: AF2Config.preset("tiny"), "m140": _m140}
_MODELS: dict = {}


def _model(size: str) -> AudioFlamingo2:
    if size not in _MODELS:
        torch.manual_seed(0)
        model = AudioFlamingo2(SIZES[size](), tokenizer=tiny_tokenizer()).to(DEVICE).eval()
        with torch.no_grad():
            for block in model.xattn.values():  # open gates: the media path matters to the tokens
                block.attn_gate.fill_(0.5)
                block.ff_gate.fill_(0.5)
        _MODELS[size] = model
    return _MODELS[size]


def _inputs(model, B: int) -> dict:
    g = torch.Generator().manual_seed(B)
    t = model.config.token_ids
    ids = torch.randint(0, model.llm.config.vocab_size, (B, P), generator=g)
    ids[ids == t["audio"]] = t["sep"]
    ids[:, 0], ids[:, -1] = t["audio"], t["sep"]
    return {
        "input_ids": ids.to(DEVICE),
        "attention_mask": torch.ones(B, P, dtype=torch.bool, device=DEVICE),
        "audio_windows": (0.1 * torch.randn(B, 1, 160_000, generator=g)).to(DEVICE),
        "audio_window_mask": torch.ones(B, 1, dtype=torch.bool, device=DEVICE),
    }


@pytest.mark.parametrize("impl", ["af2", "earlier_loop"])
@pytest.mark.parametrize("B", [1, 8])
@pytest.mark.parametrize("size", list(SIZES))
def test_greedy_generate(benchmark, size, B, impl):
    model = _model(size)
    inputs = _inputs(model, B)
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["audio_windows"], inputs["audio_window_mask"], N)
    with torch.no_grad():
        new = model.generate(**inputs, max_new_tokens=N, do_sample=False)[:, P:]
        want = greedy_loop(model, *args)
    assert torch.equal(new.cpu(), want.cpu()), "generate and the earlier loop disagree"

    def run():
        with torch.no_grad():
            if impl == "af2":
                model.generate(**inputs, max_new_tokens=N, do_sample=False)
            else:
                greedy_loop(model, *args)
        sync(DEVICE)

    benchmark.group = f"greedy decoding {size} B={B} P={P} N={want.shape[1]} fp32 {DEVICE.type}"
    benchmark.extra_info.update(new_tokens=int(want.shape[1]), batch=B, size=size)
    benchmark.pedantic(run, warmup_rounds=1, rounds=5 if size == "m140" else 10, iterations=1)
    record(benchmark.group, impl, benchmark, target=0.95)
