"""Windowed rotary position embedding (RoPE) over (window, token) sequences.

Semantics are fixed in docs/design.md. For x of shape (B, S, H, D), S = W * window_size:
  position of token s in batch b:  p = window_offsets[b, s // window_size] + s % window_size
  (default window_offsets[b, w] = w * window_size, i.e. p = s);
  theta_i = base ** (-2 i / rotary_dim), i < rotary_dim / 2; angle p * theta_i formed in float32;
  interleaved=False rotates pairs (i, i + rotary_dim/2), True rotates (2i, 2i+1);
  channels >= rotary_dim pass through unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch

from af2.ops._checks import check_same_device

__all__ = ["rope_windowed", "rope_windowed_qk"]


def _rotary_dim(x: torch.Tensor, rotary_dim: Optional[int]) -> int:
    if rotary_dim is not None:
        return int(rotary_dim)
    return int(x.shape[-1]) if x.dim() > 0 else 0


def rope_windowed(
    x: torch.Tensor,
    *,
    window_size: int,
    window_offsets: Optional[torch.Tensor] = None,
    base: float = 4096.0,
    rotary_dim: Optional[int] = None,
    interleaved: bool = False,
) -> torch.Tensor:
    """Rotate ``x`` by windowed RoPE positions. Out of place; differentiable in ``x``.

    Args:
        x: (B, S, H, D) float32 / float16 / bfloat16 (float64 too), any strides; S = W * window_size.
        window_size: tokens per window.
        window_offsets: (B, W) int32 or int64 on x's device: position of each window's first
            token; default ``w * window_size``. Positions must lie in [0, 2^24).
        base: RoPE base (AF2 uses 4096).
        rotary_dim: even, <= D; default D. Channels >= rotary_dim are copied unchanged.
        interleaved: pair layout, False = (i, i + rotary_dim/2) (GPT-NeoX/HF), True = (2i, 2i+1).

    Returns:
        (B, S, H, D) tensor of x's dtype, contiguous.
    """
    return torch.ops.af2.rope_windowed(
        x, int(window_size), window_offsets, float(base), _rotary_dim(x, rotary_dim), bool(interleaved), False
    )


def rope_windowed_qk(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    window_size: int,
    window_offsets: Optional[torch.Tensor] = None,
    base: float = 4096.0,
    rotary_dim: Optional[int] = None,
    interleaved: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q (B, S, Hq, D) and k (B, S, Hk, D) in one launch; same semantics as
    :func:`rope_windowed`. q and k share B, S, D, dtype and device; Hq and Hk may differ (GQA).

    Returns:
        (q_rotated, k_rotated), each contiguous with its input's shape.
    """
    return torch.ops.af2.rope_windowed_qk(
        q, k, int(window_size), window_offsets, float(base), _rotary_dim(q, rotary_dim), bool(interleaved), False
    )


# ---- fake (meta) kernels: shapes only, for torch.compile and FakeTensor tracing -------------


@torch.library.register_fake("af2::rope_windowed")
def _rope_windowed_fake(x, window_size, window_offsets, base, rotary_dim, interleaved, inverse):
    check_same_device("rope_windowed", [("x", x), ("window_offsets", window_offsets)])
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("af2::rope_windowed_qk")
def _rope_windowed_qk_fake(q, k, window_size, window_offsets, base, rotary_dim, interleaved, inverse):
    check_same_device("rope_windowed_qk", [("q", q), ("k", k), ("window_offsets", window_offsets)])
    return (
        torch.empty_like(q, memory_format=torch.contiguous_format),
        torch.empty_like(k, memory_format=torch.contiguous_format),
    )


# ---- autograd: the rotation is orthogonal, so the backward is the inverse rotation ---------


def _setup_context(ctx, inputs, output):
    ctx.window_size, offsets, ctx.base, ctx.rotary_dim, ctx.interleaved, ctx.inverse = inputs[-6:]
    ctx.save_for_backward(offsets)


def _rope_windowed_backward(ctx, grad):
    (offsets,) = ctx.saved_tensors
    grad_x = torch.ops.af2.rope_windowed(
        grad, ctx.window_size, offsets, ctx.base, ctx.rotary_dim, ctx.interleaved, not ctx.inverse
    )
    return grad_x, None, None, None, None, None, None


def _rope_windowed_qk_backward(ctx, grad_q, grad_k):
    (offsets,) = ctx.saved_tensors
    grad_q, grad_k = torch.ops.af2.rope_windowed_qk(
        grad_q, grad_k, ctx.window_size, offsets, ctx.base, ctx.rotary_dim, ctx.interleaved, not ctx.inverse
    )
    return grad_q, grad_k, None, None, None, None, None, None


torch.library.register_autograd("af2::rope_windowed", _rope_windowed_backward, setup_context=_setup_context)
torch.library.register_autograd("af2::rope_windowed_qk", _rope_windowed_qk_backward, setup_context=_setup_context)
