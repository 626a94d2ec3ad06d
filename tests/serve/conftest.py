"""Fixtures of the server tests: a tiny saved model and the offline reference answers
(helpers in tests/serve/support.py)."""

from __future__ import annotations

import pytest

from tests.serve.support import Offline


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny AF2 with its xattn gates open (the audio changes the answer), saved with save_pretrained."""
    import torch

    from af2.data.tokens import tiny_tokenizer
    from af2.model import AF2Config, AudioFlamingo2

    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    path = tmp_path_factory.mktemp("served-model")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def offline(model_dir):
    return Offline(model_dir)
