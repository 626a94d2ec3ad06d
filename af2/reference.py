"""Plain-PyTorch twins of af2's fused ops: the test oracle and the benchmark baseline.

They follow the eager code that other AF2/Flamingo codebases run (e.g. HF-style RoPE with
``rotate_half`` and cos/sin tables built per call), with the exact semantics of docs/design.md.
Pass float64 inputs to get the float64 oracle.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = [
    "contrastive_loss",
    "gated_residual",
    "media_attention_mask",
    "media_cross_attention",
    "rope_positions",
    "rope_theta",
    "rope_windowed",
]


def rope_positions(
    B: int, S: int, window_size: int, window_offsets: Optional[torch.Tensor], device=None
) -> torch.Tensor:
    """(B, S) int64 positions: window_offsets[b, s // window_size] + s % window_size."""
    s = torch.arange(S, device=device)
    if window_offsets is None:
        return s.expand(B, S)
    w = s // window_size
    return window_offsets.to(device=device, dtype=torch.int64)[:, w] + (s % window_size)


def rope_theta(base: float, rotary_dim: int, device=None) -> torch.Tensor:
    """(rotary_dim/2,) float32 frequencies base^(-2i/rotary_dim), computed in float64 and rounded."""
    i = torch.arange(0, rotary_dim, 2, dtype=torch.float64, device=device)
    return (float(base) ** (-i / rotary_dim)).to(torch.float32)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope_windowed(
    x: torch.Tensor,
    *,
    window_size: int,
    window_offsets: Optional[torch.Tensor] = None,
    base: float = 4096.0,
    rotary_dim: Optional[int] = None,
    interleaved: bool = False,
) -> torch.Tensor:
    """Eager twin of :func:`af2.ops.rope_windowed`: x (B, S, H, D) -> (B, S, H, D).

    Angles are formed in float32 (as the op specifies); cos/sin are evaluated in float64 for
    float64 input and in float32 otherwise, then cast to x's dtype (HF style).
    """
    B, S, H, D = x.shape
    rd = D if rotary_dim is None else rotary_dim
    pos = rope_positions(B, S, window_size, window_offsets, device=x.device)
    angles = pos.to(torch.float32)[..., None] * rope_theta(base, rd, device=x.device)  # (B, S, rd/2)
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)
    else:
        angles = torch.cat((angles, angles), dim=-1)  # (B, S, rd)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos = angles.to(compute).cos().to(x.dtype)[:, :, None, :]
    sin = angles.to(compute).sin().to(x.dtype)[:, :, None, :]
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    rotate = _rotate_every_two if interleaved else _rotate_half
    out = x_rot * cos + rotate(x_rot) * sin
    return torch.cat((out, x_pass), dim=-1) if rd < D else out


def media_attention_mask(
    key_start: torch.Tensor, key_end: torch.Tensor, Lk: int, key_padding_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """(B, Lq, Lk) bool: True where query i may attend key j (the dense mask eager code builds)."""
    j = torch.arange(Lk, device=key_start.device)
    mask = (j >= key_start[..., None].long()) & (j < key_end[..., None].long())
    if key_padding_mask is not None:
        mask = mask & key_padding_mask[:, None, :]
    return mask


def media_cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_start: torch.Tensor,
    key_end: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Eager twin of :func:`af2.ops.media_cross_attention`: a dense (B, H, Lq, Lk) masked softmax,
    as open_flamingo / AF2 compute it, with empty rows giving exactly 0 (and no NaN gradient)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    mask = media_attention_mask(key_start, key_end, k.shape[1], key_padding_mask)[:, None]  # (B, 1, Lq, Lk)
    has_key = mask.any(dim=-1, keepdim=True)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    scores = scores.masked_fill(~mask, float("-inf")).masked_fill(~has_key, 0.0)
    attn = scores.softmax(dim=-1) * has_key
    return torch.einsum("bhqk,bkhd->bqhd", attn, v)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Eager twin of :func:`af2.ops.gated_residual`: ``x + tanh(gate) * y``."""
    return x + gate.tanh().to(x.dtype) * y


def contrastive_loss(
    audio: torch.Tensor, text: torch.Tensor, *, logit_scale, hard_negatives=None, reduction: str = "mean"
) -> torch.Tensor:
    """Eager twin of :func:`af2.ops.contrastive_loss`: the full (B, B*M) logits matrix, as
    CLIP/CLAP code computes it (memory grows with B^2). Same terms and reductions."""
    B, M, D = text.shape
    flat = text.reshape(B * M, D)
    logits = logit_scale * audio @ flat.T  # (B, B*M)
    owner = torch.arange(B, device=audio.device).repeat_interleave(M)  # audio of each text row
    pos = logits[owner, torch.arange(B * M, device=audio.device)].reshape(B, M)
    others = logits.masked_fill(owner[None, :] == torch.arange(B, device=audio.device)[:, None], float("-inf"))
    parts = [pos[..., None], others.logsumexp(dim=-1)[:, None, None].expand(B, M, 1)]
    if hard_negatives is not None:
        parts.append(logit_scale * torch.einsum("bd,bmnd->bmn", audio, hard_negatives))
    a2t = torch.cat(parts, dim=-1).logsumexp(dim=-1) - pos
    t2a = logits.T.logsumexp(dim=-1).reshape(B, M) - pos
    terms = torch.stack((a2t, t2a))
    return terms.mean() if reduction == "mean" else terms
