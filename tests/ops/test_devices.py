"""Every op refuses tensors on different devices (meta included) with an error naming both
arguments and their devices; all-meta and FakeTensorMode inputs get the fake kernel's result.

A meta tensor beside CPU tensors dispatches to the op's fake kernel, which used to return an
uninitialised CPU tensor (e.g. a contrastive loss of 1.4e-45)."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import af2  # noqa: F401  (registers torch.ops.af2)

ops = torch.ops.af2


# name -> (the op's error prefix, the argument the others are compared with, the one named when that
# argument itself is off; the fake kernels check in this order, as the C++ bindings do)
CHECK_ORDER = {
    "rope_windowed": ("rope_windowed", "x", "window_offsets"),
    "rope_windowed_qk": ("rope_windowed_qk", "q", "k"),
    "media_cross_attention": ("media_cross_attention", "q", "k"),
    "media_cross_attention_backward": ("media_cross_attention_backward", "q", "grad_out"),
    "gated_residual": ("gated_residual", "x", "y"),
    "gated_residual_backward": ("gated_residual", "grad", "y"),
    "contrastive_loss": ("contrastive_loss", "audio", "text"),
    "contrastive_loss_backward": ("contrastive_loss_backward", "audio", "text"),
}


def _cases():
    """name -> (op, ordered {argument: tensor or None}, other positional args after them,
    arguments that may stay on the CPU beside another device). The tensors are a valid CPU call."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    x = r(2, 4, 3, 8)
    q, k = r(2, 5, 2, 8), r(2, 6, 2, 8)
    ks = torch.zeros(2, 5, dtype=torch.int32)
    ke = torch.full((2, 5), 6, dtype=torch.int32)
    pad = torch.ones(2, 6, dtype=torch.bool)
    out, lse = ops.media_cross_attention(q, k, k, ks, ke, pad, 0.3)
    audio, text, neg = r(3, 8), r(3, 2, 8), r(3, 2, 1, 8)
    scale = torch.tensor(5.0)
    terms, row_lse, pair_lse, col_lse = ops.contrastive_loss(audio, text, audio, text, neg, scale, 0)
    return {
        "rope_windowed": (
            ops.rope_windowed,
            {"x": x, "window_offsets": torch.tensor([[0, 2], [4, 6]])},
            (2, 4096.0, 8, False, False),
            (),
        ),
        "rope_windowed_qk": (
            ops.rope_windowed_qk,
            {"q": x, "k": x[:, :, :1], "window_offsets": torch.tensor([[0, 2], [4, 6]])},
            (2, 4096.0, 8, False, False),
            (),
        ),
        "media_cross_attention": (
            ops.media_cross_attention,
            {"q": q, "k": k, "v": k.clone(), "key_start": ks, "key_end": ke, "key_padding_mask": pad},
            (0.3,),
            (),
        ),
        "media_cross_attention_backward": (
            ops.media_cross_attention_backward,
            {
                "grad_out": torch.ones_like(out),
                "q": q,
                "k": k,
                "v": k.clone(),
                "out": out,
                "lse": lse,
                "key_start": ks,
                "key_end": ke,
                "key_padding_mask": pad,
            },
            (0.3,),
            (),
        ),
        "gated_residual": (ops.gated_residual, {"x": x, "y": x.clone(), "gate": torch.tensor([0.5])}, (), ("gate",)),
        "gated_residual_backward": (
            ops.gated_residual_backward,
            {"grad": x, "y": x.clone(), "gate": torch.tensor([0.5])},
            (),
            ("gate",),
        ),
        "contrastive_loss": (
            ops.contrastive_loss,
            {
                "audio": audio,
                "text": text,
                "audio_all": audio.clone(),
                "text_all": text.clone(),
                "hard_negatives": neg,
                "logit_scale": scale,
            },
            (0,),
            ("logit_scale",),
        ),
        "contrastive_loss_backward": (
            ops.contrastive_loss_backward,
            {
                "grad_terms": torch.ones_like(terms),
                "audio": audio,
                "text": text,
                "audio_all": audio.clone(),
                "text_all": text.clone(),
                "hard_negatives": neg,
                "logit_scale": scale,
                "offset": None,
                "row_lse": row_lse,
                "pair_lse": pair_lse,
                "col_lse": col_lse,
            },
            (),
            ("logit_scale",),
        ),
    }


def _call(op, named, tail):
    # offset sits between the tensors of contrastive_loss_backward: None marks its place
    args = [0 if (name == "offset") else t for name, t in named.items()]
    if "rope_windowed_qk" in str(op):
        return op(args[0], args[1], tail[0], args[2], *tail[1:])
    if "rope_windowed" in str(op):
        return op(args[0], tail[0], args[1], *tail[1:])
    return op(*args, *tail)


CASES = list(_cases())


def _tensor_args(name):
    return [a for a, t in _cases()[name][1].items() if t is not None and a != "offset"]


@pytest.mark.parametrize("name,arg", [(n, a) for n in CASES for a in _tensor_args(n)])
def test_one_meta_argument_is_a_named_device_error(name, arg):
    op, named, tail, cpu_ok = _cases()[name]
    label, first, other = CHECK_ORDER[name]
    named = dict(named)
    named[arg] = named[arg].to("meta")
    if arg == first:  # the reference tensor moved: the next one is named against it
        pattern = rf"{label}: {other} is on cpu but {first} is on meta"
    else:
        pattern = rf"{label}: {arg} is on meta but {first} is on cpu"
    with pytest.raises(ValueError, match=pattern):
        _call(op, named, tail)


@pytest.mark.parametrize("name", CASES)
def test_all_meta_gives_the_fake_result(name):
    op, named, tail, _ = _cases()[name]
    real = _call(op, named, tail)
    meta = _call(op, {a: (t.to("meta") if isinstance(t, torch.Tensor) else t) for a, t in named.items()}, tail)
    real, meta = (r if isinstance(r, tuple) else (r,) for r in (real, meta))
    for a, b in zip(real, meta):
        assert b.device.type == "meta" and b.shape == a.shape and b.dtype == a.dtype


@pytest.mark.parametrize("name", [n for n in CASES if _cases()[n][3]])
def test_cpu_scalar_beside_meta_is_accepted(name):
    """The one-element gate / logit scale may live on the CPU beside tensors on another device."""
    op, named, tail, cpu_ok = _cases()[name]
    moved = {a: (t if a in cpu_ok or not isinstance(t, torch.Tensor) else t.to("meta")) for a, t in named.items()}
    out = _call(op, moved, tail)
    assert (out[0] if isinstance(out, tuple) else out).device.type == "meta"


@pytest.mark.parametrize("name", CASES)
def test_fake_tensor_mode_keeps_working(name):
    op, named, tail, _ = _cases()[name]
    real = _call(op, named, tail)
    with FakeTensorMode() as mode:
        fake = {a: (mode.from_tensor(t) if isinstance(t, torch.Tensor) else t) for a, t in named.items()}
        out = _call(op, fake, tail)
    for a, b in zip(*(r if isinstance(r, tuple) else (r,) for r in (real, out))):
        assert b.shape == a.shape and b.dtype == a.dtype and b.device == a.device


def test_public_api_with_a_meta_argument():
    """What the issue saw through the public functions: each now raises instead of returning garbage."""
    from af2.ops import contrastive_loss, gated_residual, media_cross_attention, rope_windowed, rope_windowed_qk

    a, t = torch.randn(4, 8), torch.randn(4, 1, 8)
    with pytest.raises(ValueError, match=r"contrastive_loss: text is on meta but audio is on cpu"):
        contrastive_loss(a, t.to("meta"), logit_scale=10.0)
    with pytest.raises(ValueError, match=r"contrastive_loss: logit_scale is on meta but audio is on cpu"):
        contrastive_loss(a, t, logit_scale=torch.tensor(10.0, device="meta"))
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"gated_residual: y is on meta but x is on cpu"):
        gated_residual(x, x.to("meta"), torch.zeros(1))
    with pytest.raises(ValueError, match=r"gated_residual: gate is on meta but x is on cpu"):
        gated_residual(x, x, torch.zeros(1, device="meta"))
    q, k = torch.randn(1, 2, 1, 4), torch.randn(1, 3, 1, 4)
    ks, ke = torch.zeros(1, 2, dtype=torch.int32), torch.full((1, 2), 3, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"media_cross_attention: k is on meta but q is on cpu"):
        media_cross_attention(q, k.to("meta"), k, key_start=ks, key_end=ke)
    with pytest.raises(ValueError, match=r"media_cross_attention: key_start is on meta but q is on cpu"):
        media_cross_attention(q, k, k, key_start=ks.to("meta"), key_end=ke)
    xr = torch.randn(1, 4, 1, 4)
    with pytest.raises(ValueError, match=r"rope_windowed: window_offsets is on meta but x is on cpu"):
        rope_windowed(xr, window_size=2, window_offsets=torch.zeros(1, 2, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match=r"rope_windowed_qk: k is on meta but q is on cpu"):
        rope_windowed_qk(xr, xr.to("meta"), window_size=2)


def test_autograd_through_all_meta():
    """Meta inputs that require grad run the fake forward and backward (shapes only)."""
    from af2.ops import media_cross_attention

    q = torch.randn(1, 2, 1, 4, device="meta", requires_grad=True)
    k = torch.randn(1, 3, 1, 4, device="meta", requires_grad=True)
    ks = torch.zeros(1, 2, dtype=torch.int32, device="meta")
    out = media_cross_attention(q, k, k, key_start=ks, key_end=ks)
    (gq,) = torch.autograd.grad(out.sum(), q)
    assert gq.device.type == "meta" and gq.shape == q.shape
