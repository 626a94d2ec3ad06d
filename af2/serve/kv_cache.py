"""The decoding engine's static caches, preallocated once (docs/serving.md, "Decoding engine").

Self-attention keys/values of every decoder layer, per batch slot:
``k``, ``v`` (layers, slots, max_seq_len, kv_heads, head_dim); ``lengths`` (slots,) tokens held.

Media keys/values of every gated cross-attention block, per slot, padded to the longest audio
the engine takes: ``media_k``, ``media_v`` (blocks, slots, max_media, heads, dim_head);
``media_len`` (slots,) int32 valid keys; ``has_media`` (slots,) bool (False: a text-only request,
whose rows skip the blocks, as the model does without audio).
A slot's media is written once, after its request's prefill, and read by every decode step.
"""

from __future__ import annotations

import torch


class StaticKVCache:
    """Preallocated caches for ``slots`` requests (see the module doc)."""

    def __init__(
        self,
        *,
        layers: int,
        slots: int,
        max_seq_len: int,
        kv_heads: int,
        head_dim: int,
        blocks: int,
        max_media: int,
        media_heads: int,
        media_dim_head: int,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.slots, self.max_seq_len, self.max_media = slots, max_seq_len, max_media
        shape = (layers, slots, max_seq_len, kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        media_shape = (blocks, slots, max(max_media, 1), media_heads, media_dim_head)
        self.media_k = torch.zeros(media_shape, dtype=dtype, device=device)
        self.media_v = torch.zeros(media_shape, dtype=dtype, device=device)
        self.media_len = torch.zeros(slots, dtype=torch.int32, device=device)
        self.has_media = torch.zeros(slots, dtype=torch.bool, device=device)
        self.lengths = [0] * slots

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.k, self.v, self.media_k, self.media_v))

    @torch.no_grad()
    def write_prompt(self, slot: int, layer_kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """A prefill's keys/values, one (k, v) (1, kv_heads, P, head_dim) per layer, into ``slot``."""
        P = layer_kv[0][0].shape[2]
        if P > self.max_seq_len:
            raise ValueError(f"a prompt of {P} tokens does not fit the cache's {self.max_seq_len} positions")
        for i, (k, v) in enumerate(layer_kv):
            self.k[i, slot, :P].copy_(k[0].transpose(0, 1))
            self.v[i, slot, :P].copy_(v[0].transpose(0, 1))
        self.lengths[slot] = P

    @torch.no_grad()
    def write_media(self, slot: int, block_kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Each block's media keys/values (1, M, heads, dim_head) into ``slot``; M <= max_media."""
        M = block_kv[0][0].shape[1]
        if M > self.max_media:
            raise ValueError(f"{M} media tokens do not fit the cache's {self.max_media}")
        for i, (k, v) in enumerate(block_kv):
            self.media_k[i, slot, :M].copy_(k[0])
            self.media_v[i, slot, :M].copy_(v[0])
        self.media_len[slot] = M
        self.has_media[slot] = True

    def clear_media(self, slot: int) -> None:
        self.media_len[slot] = 0
        self.has_media[slot] = False

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.k, self.v, self.media_k, self.media_v, self.media_len, self.has_media)
