"""AFCLAP: transformers' HTSAT, dense features 64 x width per 10-s window, contrastive towers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from af2.model import AF2Config
from af2.model.afclap import AFCLAP


def _clap(seed=0, **audio):
    torch.manual_seed(seed)
    cfg = AF2Config.preset("tiny")
    cfg.clap.audio.update(audio)
    return AFCLAP(cfg.clap, cfg.mel).eval()


def _windows(B, W, seed=0):
    return 0.1 * torch.randn(B, W, 160000, generator=torch.Generator().manual_seed(seed))


def test_uses_transformers_htsat():
    from transformers import ClapAudioModel, T5EncoderModel

    clap = _clap()
    assert isinstance(clap.audio, ClapAudioModel) and isinstance(clap.text, T5EncoderModel)


def test_dense_features_shape_and_padding():
    clap = _clap()
    x = _windows(2, 3)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    seen = []
    clap.audio.register_forward_hook(lambda m, a, kw, out: seen.append(kw["input_features"].shape[0]), with_kwargs=True)
    with torch.no_grad():
        dense = clap.dense_features(x, mask)
    assert dense.shape == (2, 3, 64, 32)
    assert seen == [4]  # padded windows never reach the HTSAT
    assert (dense[0, 1:] == 0).all() and (dense[1] != 0).any(dim=-1).all()
    with torch.no_grad():  # a window's features are its own (eval mode)
        alone = clap.dense_features(x[1:, 2:])
    torch.testing.assert_close(alone[0, 0], dense[1, 2], rtol=1e-4, atol=1e-4)


def test_htsat_large_widths_give_64_by_2048():
    # HTSAT-large's widths, heads, window and spec size, one block per stage (kept fast).
    cfg = AF2Config.preset("af2-3b")
    cfg.clap.audio.update(depths=[1, 1, 1, 1], drop_path_rate=0.0)
    cfg.clap.text_tower = False
    torch.manual_seed(0)
    clap = AFCLAP(cfg.clap, cfg.mel).eval()
    with torch.no_grad():
        dense = clap.dense_features(_windows(1, 1))
    assert dense.shape == (1, 1, 64, 2048) == (1, 1, cfg.tokens_per_window, cfg.audio_dim)


def test_contrastive_embeddings_train():
    clap = _clap().train()
    x = _windows(3, 2, seed=1)
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    text = torch.randint(2, 128, (3, 2, 7), generator=torch.Generator().manual_seed(2))  # M = 2 captions
    tmask = torch.ones_like(text, dtype=torch.bool)
    tmask[1, 1, 4:] = False
    a, t = clap.encode_audio(x, mask), clap.encode_text(text, tmask)
    assert a.shape == (3, 16) and t.shape == (3, 2, 16)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3, 2))
    # Plain InfoNCE on the first caption; gradients reach both towers and the logit scale.
    logits = clap.logit_scale.exp() * a @ t[:, 0].T
    loss = (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.T, torch.arange(3))) / 2
    loss.backward()
    assert torch.isclose(clap.logit_scale.detach(), torch.tensor(1 / 0.07).log())
    for part in (clap.audio, clap.audio_projection, clap.text, clap.text_projection):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert clap.logit_scale.grad is not None and clap.logit_scale.grad != 0


def test_logit_scale_is_shape_1_and_a_0dim_one_loads():
    clap = _clap()
    assert clap.logit_scale.shape == (1,)
    state = clap.state_dict()
    state["logit_scale"] = torch.tensor(3.0)  # older checkpoints held it 0-dim
    clap.load_state_dict(state)
    assert clap.logit_scale.shape == (1,) and clap.logit_scale.item() == 3.0
    assert state["logit_scale"].shape == ()  # the caller's dict is not changed
    state["logit_scale"] = torch.ones(2)
    with pytest.raises(RuntimeError, match="size mismatch for logit_scale"):
        clap.load_state_dict(state)


def test_padded_window_does_not_change_clip_embedding():
    clap = _clap()
    x = _windows(1, 2)
    mask = torch.tensor([[True, False]])
    with torch.no_grad():
        e1 = clap.encode_audio(x, mask)
        x[0, 1] = 5.0
        e2 = clap.encode_audio(x, mask)
        single = clap.encode_audio(x[:, 0])
    torch.testing.assert_close(e1, e2)
    torch.testing.assert_close(e1, single, rtol=1e-5, atol=1e-5)
