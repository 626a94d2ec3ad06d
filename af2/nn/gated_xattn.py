"""The AF2 / Flamingo gated cross-attention block on af2's fused ops.

Per block (docs/design.md): LayerNorm, q = x W_q (dim -> heads*dim_head), k, v from the media
(dim_media -> 2 * heads*dim_head), masked media cross-attention, out projection, then
``x + tanh(attn_gate) * attn``; LayerNorm, FFN dim -> ff_mult*dim (GELU) -> dim without bias,
``x + tanh(ff_gate) * ff``. Both gates start at 0, so the block is the identity at init.

Parameter names are those of open_flamingo / AF2 / flamingo-pytorch (attn.norm, attn.to_q,
attn.to_kv, attn.to_out, attn_gate, ff.0, ff.1, ff.3, ff_gate), so their block state_dicts load
as they are; :func:`gated_xattn_state_dict_from_flamingo` extracts one block's entries from a
whole-model state_dict.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

import torch
from torch import nn

from af2 import reference
from af2.ops import gated_residual, media_cross_attention, media_key_ranges_from_time


class MaskedCrossAttention(nn.Module):
    """Text (B, Lq, dim) attends media (B, T, n, dim_media) by per-token key ranges."""

    def __init__(self, dim: int, dim_media: int, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_media, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def media_kv(self, media: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """media (B, T, n, dim_media) -> k, v (B, T*n, heads, dim_head), views of one projection."""
        B, T, n, _ = media.shape
        kv = self.to_kv(media.reshape(B, T * n, -1)).view(B, T * n, 2, self.heads, self.dim_head)
        return kv[:, :, 0], kv[:, :, 1]

    def forward(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_start: torch.Tensor,
        key_end: torch.Tensor,
        key_padding_mask: Optional[torch.Tensor],
        fused: bool = True,
    ) -> torch.Tensor:
        B, Lq, _ = x.shape
        q = self.to_q(self.norm(x)).view(B, Lq, self.heads, self.dim_head)
        attend = media_cross_attention if fused else reference.media_cross_attention
        out = attend(q, k, v, key_start=key_start, key_end=key_end, key_padding_mask=key_padding_mask)
        return self.to_out(out.reshape(B, Lq, self.heads * self.dim_head))


class GatedCrossAttentionBlock(nn.Module):
    """AF2's gated cross-attention block (one before every LLM decoder layer).

    Args:
        dim: text width (2048 in AF2); dim_media: media width (2048); heads (8) x dim_head (64);
        ff_mult: FFN expansion (4); only_attend_immediate_media: attend only the latest media.
        fused: use af2's fused ops (True) or their eager twins (False, the baseline).
    """

    def __init__(
        self,
        dim: int,
        dim_media: int,
        heads: int = 8,
        dim_head: int = 64,
        ff_mult: int = 4,
        only_attend_immediate_media: bool = True,
        fused: bool = True,
    ):
        super().__init__()
        self.attn = MaskedCrossAttention(dim, dim_media, heads, dim_head)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * ff_mult, bias=False),
            nn.GELU(),
            nn.Linear(dim * ff_mult, dim, bias=False),
        )
        self.ff_gate = nn.Parameter(torch.zeros(1))
        self.only_attend_immediate_media = only_attend_immediate_media
        self.fused = fused
        self._cache: Optional[dict] = None

    # -- media ---------------------------------------------------------------------------------
    def _prepare_media(self, media: torch.Tensor, media_mask: Optional[torch.Tensor]) -> dict:
        B, T, n, _ = media.shape
        k, v = self.attn.media_kv(media)
        if media_mask is None:
            counts, pad = torch.full((B, T), n, device=media.device, dtype=torch.long), None
        else:
            if media_mask.shape != (B, T, n):
                raise ValueError(
                    f"GatedCrossAttentionBlock: media_mask must be (B, T, n) = {(B, T, n)}, "
                    f"got {tuple(media_mask.shape)}"
                )
            counts, pad = media_mask.sum(dim=-1), media_mask.reshape(B, T * n)
        return {
            "k": k,
            "v": v,
            "counts": counts,
            "slot": n,
            "pad": pad,
            "seen": torch.zeros(B, 1, dtype=torch.long, device=media.device),
        }

    def cache_media(self, media: torch.Tensor, media_mask: Optional[torch.Tensor] = None) -> None:
        """Compute the media's keys and values once for generation (``use_cached_media=True``)."""
        self._cache = self._prepare_media(media, media_mask)

    def clear_cache(self) -> None:
        self._cache = None

    # -- forward -------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        media: Optional[torch.Tensor] = None,
        media_locations: Optional[torch.Tensor] = None,
        media_mask: Optional[torch.Tensor] = None,
        use_cached_media: bool = False,
    ) -> torch.Tensor:
        """x (B, Lq, dim); media (B, T, n, dim_media); media_locations (B, Lq) bool (True at
        `<audio>` tokens); media_mask (B, T, n) bool (True = valid token). With
        ``use_cached_media`` the media of :meth:`cache_media` is used and the count of `<audio>`
        tokens seen by earlier calls carries over (decode steps attend the latest media).
        Returns (B, Lq, dim)."""
        B, Lq, _ = x.shape
        if media_locations is None:
            media_locations = torch.zeros(B, Lq, dtype=torch.bool, device=x.device)
        if use_cached_media:
            if self._cache is None:
                raise RuntimeError("GatedCrossAttentionBlock: use_cached_media=True needs cache_media(media) first")
            mc = self._cache
        else:
            if media is None:
                raise ValueError("GatedCrossAttentionBlock: media is required unless use_cached_media=True")
            mc = self._prepare_media(media, media_mask)
        # text_time counts the media at or before each token, media of earlier calls included.
        text_time = media_locations.long().cumsum(dim=1) + mc["seen"]
        key_start, key_end = media_key_ranges_from_time(
            text_time, mc["counts"], mc["slot"], self.only_attend_immediate_media
        )
        if use_cached_media:
            mc["seen"] = mc["seen"] + media_locations.sum(dim=1, keepdim=True)
        attn = self.attn(x, mc["k"], mc["v"], key_start, key_end, mc["pad"], fused=self.fused)
        residual = gated_residual if self.fused else reference.gated_residual
        x = residual(x, attn, self.attn_gate)
        return residual(x, self.ff(x), self.ff_gate)


_FLAMINGO_BLOCK_PREFIXES = [
    r"lang_encoder\.model\.layers\.{i}\.gated_cross_attn_layer(?:_sound)?\.",  # AF2 (canonical)
    r"lang_encoder\.gated_cross_attn_layers(?:_sound)?\.{i}\.",  # AF2 alias, open_flamingo
    r"(?:.*\.)?gated_cross_attn_layers?\.{i}\.",  # other wrappers
]
_BLOCK_KEYS = {
    "attn_gate",
    "ff_gate",
    "attn.norm.weight",
    "attn.norm.bias",
    "attn.to_q.weight",
    "attn.to_kv.weight",
    "attn.to_out.weight",
    "ff.0.weight",
    "ff.0.bias",
    "ff.1.weight",
    "ff.3.weight",
}


def gated_xattn_state_dict_from_flamingo(
    state_dict: Mapping[str, torch.Tensor], layer: Optional[int] = None
) -> dict[str, torch.Tensor]:
    """One block's parameters for :class:`GatedCrossAttentionBlock` from an open_flamingo / AF2 /
    flamingo-pytorch state_dict.

    The key mapping (the parameter names are the same; only the prefix goes):
      AF2:            lang_encoder.model.layers.{i}.gated_cross_attn_layer_sound.<name>
                      (alias lang_encoder.gated_cross_attn_layers_sound.{i}.<name>)
      open_flamingo:  lang_encoder.gated_cross_attn_layers.{i}.<name>
      a single block: <name> as is (flamingo-pytorch GatedCrossAttentionBlock, open_flamingo's)
    with <name> in attn.norm.{weight,bias}, attn.to_q.weight, attn.to_kv.weight,
    attn.to_out.weight, attn_gate, ff.0.{weight,bias}, ff.1.weight, ff.3.weight, ff_gate.

    Args:
        state_dict: a block's or a whole model's state_dict.
        layer: decoder layer index i for a whole-model state_dict; None for a block's own.
    Raises:
        KeyError naming the missing parameters when the block is incomplete.
    """
    if layer is None:
        out = {k: v for k, v in state_dict.items() if k in _BLOCK_KEYS}
    else:
        out = {}
        for pattern in _FLAMINGO_BLOCK_PREFIXES:
            rx = re.compile("^" + pattern.format(i=layer) + "(.+)$")
            for key, value in state_dict.items():
                m = rx.match(key)
                if m and m.group(1) in _BLOCK_KEYS:
                    out.setdefault(m.group(1), value)
    missing = sorted(_BLOCK_KEYS - out.keys())
    if missing:
        raise KeyError(f"gated cross-attention block{'' if layer is None else f' {layer}'}: missing {missing}")
    return out
