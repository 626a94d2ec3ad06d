"""AudioTransformer: scale + LayerNorm, windowed RoPE (fused == eager twin), padded windows masked."""

from __future__ import annotations

import pytest
import torch

from af2.model.audio_transformer import AudioTransformer
from af2.model.config import AudioTransformerConfig

CFG = AudioTransformerConfig(layers=3, heads=2, ffn_dim=64, rotary_dim=8)


def _model(fused=True, cfg=CFG, dim=32):
    torch.manual_seed(0)
    return AudioTransformer(dim, cfg, fused=fused).eval()


def _dense(B=2, W=3, n=64, D=32, seed=0):
    return torch.randn(B, W, n, D, generator=torch.Generator().manual_seed(seed))


def test_shape_and_input_scaling():
    dense = _dense()
    zero_layers = _model(cfg=AudioTransformerConfig(layers=0))
    # No layers: LayerNorm(x * sqrt(D)) over the flattened (window, token) sequence.
    expect = torch.nn.functional.layer_norm(dense.reshape(2, 192, 32) * 32**0.5, (32,), eps=1e-6)
    torch.testing.assert_close(zero_layers(dense), expect)
    assert _model()(dense).shape == (2, 192, 32)


def test_padded_windows_do_not_change_valid_outputs():
    model = _model()
    dense = _dense()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    out = model(dense, mask)
    changed = dense.clone()
    changed[0, 2] = 100.0
    out2 = model(changed, mask)
    torch.testing.assert_close(out[0, :128], out2[0, :128])
    torch.testing.assert_close(out[1], out2[1])
    trimmed = model(dense[:1, :2])  # the same sample without the padded window
    torch.testing.assert_close(out[0, :128], trimmed[0], rtol=1e-5, atol=1e-5)


def test_fused_rope_matches_eager_twin():
    dense = _dense().requires_grad_()
    mask = torch.tensor([[True, False, False], [True, True, True]])
    fused, eager = _model(fused=True), _model(fused=False)
    y1, y2 = fused(dense, mask), eager(dense, mask)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    g1 = torch.autograd.grad(y1.sum(), [dense, *fused.parameters()])
    g2 = torch.autograd.grad(y2.sum(), [dense, *eager.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_positions_run_over_windows():
    # Window order matters (positions are the flattened index): swapping two windows changes
    # more than a permutation of the outputs would.
    model = _model()
    dense = _dense(B=1, W=2)
    out = model(dense)
    swapped = model(dense.flip(1))
    assert not torch.allclose(out[0, :64], swapped[0, 64:], atol=1e-4)


def test_rejects_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="width 32"):
        model(_dense(D=16))
    with pytest.raises(ValueError, match="at least one valid"):
        model(_dense(), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="rotary_dim"):
        AudioTransformer(32, AudioTransformerConfig(heads=2, rotary_dim=32))
