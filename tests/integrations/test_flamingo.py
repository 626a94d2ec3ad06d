"""af2 against flamingo-pytorch (from PyPI): same outputs and gradients, weights copied across,
and patching a flamingo-pytorch model to run the fused ops."""

from __future__ import annotations

import copy

import pytest
import torch

fp = pytest.importorskip("flamingo_pytorch.flamingo_pytorch")

from af2.integrations.flamingo import patch_flamingo, unpatch_flamingo  # noqa: E402
from af2.nn import GatedCrossAttentionBlock, gated_xattn_state_dict_from_flamingo  # noqa: E402

DIM = 32


def _theirs(immediate=True):
    torch.manual_seed(0)
    blk = fp.GatedCrossAttentionBlock(dim=DIM, dim_head=8, heads=4, only_attend_immediate_media=immediate)
    with torch.no_grad():
        blk.attn_gate.fill_(0.6)
        blk.ff_gate.fill_(0.9)
    return blk


def _inputs(immediate=True):
    torch.manual_seed(1)
    x = torch.randn(2, 14, DIM)
    media = torch.randn(2, 3, 5, DIM)
    loc = torch.zeros(2, 14, dtype=torch.bool)
    loc[0, [0, 6, 9]] = True
    loc[1, [0, 1]] = True
    if immediate:
        loc[1, 0] = False  # text before media: only well defined in immediate mode upstream
    return x, media, loc


def _grads(out, x, module):
    return torch.autograd.grad(out.square().sum(), [x, *module.parameters()])


@pytest.mark.parametrize("immediate", [True, False])
def test_af2_block_matches_flamingo_pytorch_with_copied_weights(immediate):
    theirs = _theirs(immediate)
    ours = GatedCrossAttentionBlock(DIM, DIM, heads=4, dim_head=8, only_attend_immediate_media=immediate)
    ours.load_state_dict(gated_xattn_state_dict_from_flamingo(theirs.state_dict()))
    x, media, loc = _inputs(immediate)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_t, out_o = theirs(xa, media, loc), ours(xb, media, loc)
    torch.testing.assert_close(out_o, out_t, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(out_o, xb, ours), _grads(out_t, xa, theirs)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("immediate", [True, False])
def test_patched_flamingo_pytorch_block_matches_original(immediate):
    original = _theirs(immediate)
    patched = copy.deepcopy(original)
    assert patch_flamingo(patched) == 2  # the block and its attention
    x, media, loc = _inputs(immediate)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = original(xa, media, loc), patched(xb, media, loc)
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(out_b, xb, patched), _grads(out_a, xa, original)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert unpatch_flamingo(patched) == 2
    assert torch.equal(patched(x, media, loc), original(x, media, loc))


def test_patched_without_media_locations_attends_everything():
    original = _theirs()
    patched = copy.deepcopy(original)
    patch_flamingo(patched)
    x, media, _ = _inputs()
    torch.testing.assert_close(patched(x, media), original(x, media), rtol=1e-5, atol=1e-5)
