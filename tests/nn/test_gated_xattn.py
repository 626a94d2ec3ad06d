"""af2.nn.GatedCrossAttentionBlock: identity at init, fused == eager, caching, state_dicts."""

from __future__ import annotations

import pytest
import torch

from af2.nn import GatedCrossAttentionBlock, gated_xattn_state_dict_from_flamingo


def _inputs(device, B=2, Lq=12, T=2, n=6, dim=32, dim_media=24):
    torch.manual_seed(0)
    x = torch.randn(B, Lq, dim, device=device)
    media = torch.randn(B, T, n, dim_media, device=device)
    loc = torch.zeros(B, Lq, dtype=torch.bool, device=device)
    loc[0, [2, 7]] = True
    loc[1, 0] = True
    mask = torch.ones(B, T, n, dtype=torch.bool, device=device)
    mask[0, 1, 4:] = False  # a padded window
    return x, media, loc, mask


def _block(device, **kw):
    blk = GatedCrossAttentionBlock(32, 24, heads=2, dim_head=8, **kw).to(device)
    with torch.no_grad():
        blk.attn_gate.fill_(0.8)
        blk.ff_gate.fill_(-0.5)
    return blk


def test_identity_at_init(device):
    x, media, loc, mask = _inputs(device)
    blk = GatedCrossAttentionBlock(32, 24, heads=2, dim_head=8).to(device)
    assert torch.equal(blk(x, media, loc, mask), x)


@pytest.mark.parametrize("immediate", [True, False])
def test_fused_matches_eager_block(device, immediate):
    x, media, loc, mask = _inputs(device)
    blk = _block(device, only_attend_immediate_media=immediate)
    xs = x.clone().requires_grad_()
    fused = blk(xs, media, loc, mask)
    g_fused = torch.autograd.grad(fused.sum(), [xs, *blk.parameters()])
    blk.fused = False
    eager = blk(xs, media, loc, mask)
    g_eager = torch.autograd.grad(eager.sum(), [xs, *blk.parameters()])
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fused, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_text_before_media_is_unchanged_by_attention(device):
    x, media, loc, mask = _inputs(device)
    blk = _block(device)
    with torch.no_grad():
        blk.ff_gate.zero_()
    out = blk(x, media, loc, mask)
    assert torch.equal(out[0, :2], x[0, :2])  # tokens before the first <audio> of sample 0


def test_cached_media_decoding_matches_full_forward(device):
    """Prefill with cached media then one token at a time == one full forward."""
    x, media, loc, mask = _inputs(device)
    blk = _block(device)
    full = blk(x, media, loc, mask)
    blk.cache_media(media, mask)
    parts = [blk(x[:, :5], media_locations=loc[:, :5], use_cached_media=True)]
    for i in range(5, x.shape[1]):
        parts.append(blk(x[:, i : i + 1], media_locations=loc[:, i : i + 1], use_cached_media=True))
    torch.testing.assert_close(torch.cat(parts, dim=1), full)


def test_cached_media_computes_kv_once(device):
    x, media, loc, mask = _inputs(device)
    blk = _block(device)
    calls = []
    blk.attn.to_kv.register_forward_hook(lambda *a: calls.append(1))
    blk.cache_media(media, mask)
    for i in range(4):
        blk(x[:, i : i + 1], media_locations=loc[:, i : i + 1], use_cached_media=True)
    assert len(calls) == 1


def test_use_cached_media_without_cache_is_an_error(device):
    x, media, loc, mask = _inputs(device)
    with pytest.raises(RuntimeError, match="cache_media"):
        _block(device)(x, use_cached_media=True)


def test_state_dict_mapping_from_af2_and_open_flamingo_names():
    blk = _block("cpu")
    own = blk.state_dict()
    whole = {f"lang_encoder.model.layers.3.gated_cross_attn_layer_sound.{k}": v for k, v in own.items()}
    whole.update({f"lang_encoder.gated_cross_attn_layers_sound.3.{k}": v for k, v in own.items()})  # alias
    whole["lang_encoder.model.layers.3.decoder_layer.mlp.up_proj.weight"] = torch.zeros(1)
    fresh = GatedCrossAttentionBlock(32, 24, heads=2, dim_head=8)
    fresh.load_state_dict(gated_xattn_state_dict_from_flamingo(whole, layer=3))
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, own[k]), k
    of = {f"lang_encoder.gated_cross_attn_layers.0.{k}": v for k, v in own.items()}
    fresh.load_state_dict(gated_xattn_state_dict_from_flamingo(of, layer=0))
    with pytest.raises(KeyError, match=r"block 5: missing \['attn.norm.bias'"):
        gated_xattn_state_dict_from_flamingo(whole, layer=5)
