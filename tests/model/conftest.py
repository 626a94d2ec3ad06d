"""Fixtures of the model tests: the tiny offline tokenizer, tiny AF2 models, collated batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from af2.data.collator import AF2Collator
from af2.data.dataset import AudioItem
from af2.data.manifest import Sample
from af2.model import AF2Config, AudioFlamingo2
from af2.text.tokens import tiny_tokenizer

SR = 16000


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def make_model(tokenizer):
    """make_model(gates=0.0, seed=0, **config overrides) -> a tiny AudioFlamingo2 in eval mode.
    Non-zero ``gates`` open every block's attn/ff gates, so the audio reaches the logits."""

    def make(gates: float = 0.0, seed: int = 0, **overrides) -> AudioFlamingo2:
        torch.manual_seed(seed)
        model = AudioFlamingo2(AF2Config.preset("tiny", **overrides), tokenizer=tokenizer).eval()
        with torch.no_grad():
            for block in model.xattn.values():
                block.attn_gate.fill_(gates)
                block.ff_gate.fill_(gates)
        return model

    return make


def item(i: int, seconds: float, prompt: str = "How many beeps?", answer: str = "3 beeps") -> AudioItem:
    """A collator input: ``seconds`` of seeded noise (values differ per sample)."""
    g = torch.Generator().manual_seed(100 + i)
    sample = Sample(Path(f"/x/{i}.wav"), prompt, answer, None, None, "counting", f"s{i}", None, i + 1)
    return AudioItem(i, sample, 0.1 * torch.randn(int(seconds * SR), generator=g), False, seconds)


@pytest.fixture
def batch(tokenizer):
    """Two samples of 4 s and 13 s (1 and 2 windows; the first has a padded window)."""
    return AF2Collator(tokenizer, max_windows=3)([item(0, 4.0), item(1, 13.0, "Which instrument plays?", "piano")])
