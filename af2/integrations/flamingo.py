"""Run af2's fused media cross-attention and gated residual inside Flamingo-style models.

:func:`patch_flamingo` finds, in any nn.Module tree, the masked cross-attention modules of
open_flamingo / AF2 / flamingo-pytorch (modules with ``norm``, ``to_q``, ``to_kv``, ``to_out``,
``heads`` and ``only_attend_immediate_media``) and their gated blocks (``attn``, ``attn_gate``,
``ff``, ``ff_gate``), and replaces their ``forward`` with one that computes the same function
on af2's ops: no dense (Lq, T*n) mask, no Lq x Lk score matrix, one fused gated residual.
Weights and state_dicts are untouched; :func:`unpatch_flamingo` restores the originals.

One deliberate difference: with ``only_attend_immediate_media=False``, text before any media
outputs 0 here (docs/design.md), where flamingo-pytorch lets it attend uniformly to all media.
"""

from __future__ import annotations

import types
from typing import Optional

import torch
from torch import nn

from af2.ops import gated_residual, media_cross_attention, media_key_ranges_from_time

_ORIGINAL = "_af2_original_forward"


def _is_masked_cross_attention(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("norm", "to_q", "to_kv", "to_out", "heads", "only_attend_immediate_media"))


def _is_gated_block(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("attn", "attn_gate", "ff", "ff_gate"))


def fused_masked_cross_attention_forward(
    self,
    x: torch.Tensor,
    media: torch.Tensor,
    media_locations: Optional[torch.Tensor] = None,
    use_cached_media: bool = False,
) -> torch.Tensor:
    """x (B, Lq, dim), media (B, T, n, dim_media), media_locations (B, Lq) bool -> (B, Lq, dim).

    Without media_locations every token attends every media token (as the originals do);
    with ``use_cached_media`` (open_flamingo generation) every token attends the latest media.
    """
    B, Lq, _ = x.shape
    _, T, n, _ = media.shape
    inner = self.to_q.out_features
    dh = inner // self.heads
    q = self.to_q(self.norm(x)).view(B, Lq, self.heads, dh)
    kv = self.to_kv(media.reshape(B, T * n, -1))
    k, v = (t.view(B, T * n, self.heads, dh) for t in kv.chunk(2, dim=-1))
    if media_locations is None:
        ks = torch.zeros(B, Lq, dtype=torch.int32, device=x.device)
        ke = torch.full((B, Lq), T * n, dtype=torch.int32, device=x.device)
    else:
        if use_cached_media:
            text_time = media_locations.sum(dim=1, keepdim=True).expand(B, Lq)
        else:
            text_time = media_locations.long().cumsum(dim=1)
        counts = torch.full((B, T), n, dtype=torch.long, device=x.device)
        ks, ke = media_key_ranges_from_time(text_time, counts, n, bool(self.only_attend_immediate_media))
    scale = getattr(self, "scale", dh**-0.5)
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, scale=scale)
    return self.to_out(out.reshape(B, Lq, inner))


def fused_gated_block_forward(self, x: torch.Tensor, media: torch.Tensor, media_locations=None, **kwargs):
    """x + tanh(attn_gate) attn(x), then x + tanh(ff_gate) ff(x), with the fused residual."""
    x = gated_residual(x, self.attn(x, media, media_locations=media_locations, **kwargs), self.attn_gate)
    return gated_residual(x, self.ff(x), self.ff_gate)


def patch_flamingo(model: nn.Module) -> int:
    """Route every Flamingo cross-attention module and gated block of ``model`` through af2's
    fused ops (in place). Returns the number of modules patched."""
    count = 0
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            continue
        if _is_masked_cross_attention(module):
            fn = fused_masked_cross_attention_forward
        elif _is_gated_block(module):
            fn = fused_gated_block_forward
        else:
            continue
        setattr(module, _ORIGINAL, module.forward)
        module.forward = types.MethodType(fn, module)
        count += 1
    return count


def unpatch_flamingo(model: nn.Module) -> int:
    """Undo :func:`patch_flamingo`. Returns the number of modules restored."""
    count = 0
    for module in model.modules():
        if hasattr(module, _ORIGINAL):
            module.forward = getattr(module, _ORIGINAL)
            delattr(module, _ORIGINAL)
            count += 1
    return count
