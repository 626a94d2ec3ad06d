"""Fixtures of the serving tests: one tiny AF2 model per module and its processor, clips of
several lengths, greedy references from generate.

The model's gates are open and its decoder and block weights scaled up, so that its greedy
answers change with the audio, the prompt and every earlier token (the tiny preset's random
initialisation repeats one token): a wrong cache position or media row changes the tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from af2.model import AF2Config, AudioFlamingo2
from af2.text.tokens import tiny_tokenizer
from tests.cli.conftest import af2  # noqa: F401  (the fixture: af2.cli.main in this process)
from tests.serve.support import Offline

SR = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for block in m.xattn.values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
            for p in block.parameters():
                if p.dim() == 2:
                    p.mul_(4.0)
        for p in m.llm.model.layers.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return m


@pytest.fixture(scope="module")
def processor(model):
    return model.processor


def clip(seconds: float, seed: int, rate: int = SR) -> np.ndarray:
    """``seconds`` of seeded noise at ``rate`` Hz, float32 (T,)."""
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def generate_ids(model, processor, prompt: str, audio, max_new_tokens: int) -> list[int]:
    """``model.generate(**processor(...), do_sample=False)``'s new ids for one request, end tokens dropped."""
    enc = processor(text=[prompt], audio=[audio]) if audio is not None else processor(text=[prompt], audio_token=False)
    enc = {k: v for k, v in enc.items() if k != "truncated"}
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    stop = set(model.generation_config.eos_token_id) | {model.generation_config.pad_token_id}
    return [t for t in out[0, enc["input_ids"].shape[1] :].tolist() if t not in stop]


# ---- the server tests (helpers in tests/serve/support.py) ----


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny AF2 with its xattn gates open and weights scaled (the audio changes the answer),
    saved with save_pretrained."""
    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():  # xattn weights x3: answers differ more between clips (mixed answers show)
        for block in model.xattn.values():
            for p in block.parameters():
                p.mul_(3.0)
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    path = tmp_path_factory.mktemp("served-model")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def offline(model_dir):
    return Offline(model_dir)
