"""One decode step of every running request at once, over the engine's static caches.

Shapes (B batch rows = slots 0..B-1, S cache positions attended, V vocabulary):

    tokens (B,) int64, positions (B,) int64 (the new token's position = tokens already cached)
      -> Qwen2 decoder layers, each preceded by its gated cross-attention block (xattn.{i}) on
         the rows that hold audio, reading the slot's cached media keys/values
      -> logits (B, V) float32

The step reuses the model's own modules (norms, projections, rotary embedding, MLP, the blocks'
attention with the fused-ops switch of ``model.use_fused_ops``) so the numbers are those of
``model.generate``; only the KV cache differs: the new keys/values are written in place at
``positions`` and the attention masks positions past them (docs/serving.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

from af2 import reference
from af2.ops import gated_residual


class DecodeStep:
    """``step(tokens, positions, span) -> logits`` over the first B = len(tokens) slots of
    ``cache`` (a :class:`~af2.serve.kv_cache.StaticKVCache`), attending its first ``span``
    positions. The cache tensors are attributes, not arguments: compiled, they are static
    addresses (a CUDA graph can write them in place)."""

    def __init__(self, model, cache):
        self.model = model
        self.cache = cache
        llm = model.llm
        self.layers = list(llm.model.layers)
        self.blocks = {int(i): (j, block) for j, (i, block) in enumerate(model.xattn.items())}
        cfg = llm.config
        if any(t != "full_attention" for t in getattr(cfg, "layer_types", None) or ()):
            raise NotImplementedError("the decoding engine supports full attention layers only (no sliding window)")
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    def _xattn(self, block, x, k, v, media_len):
        """x (B, 1, dim); k, v (B, M, heads, dim_head); media_len (B,) int32 -> (B, 1, dim) (the block's forward)."""
        B = x.shape[0]
        start = torch.zeros(B, 1, dtype=torch.int32, device=x.device)
        end = media_len.view(B, 1)
        attn = block.attn(x, k, v, start, end, None, fused=block.fused)
        residual = gated_residual if block.fused else reference.gated_residual
        x = residual(x, attn, block.attn_gate)
        return residual(x, block.ff(x), block.ff_gate)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        llm, c = self.model.llm, self.cache
        B = tokens.shape[0]
        S = span
        k_cache, v_cache = c.k[:, :B, :S], c.v[:, :B, :S]
        media_k, media_v, media_len, has_media = c.media_k[:, :B], c.media_v[:, :B], c.media_len[:B], c.has_media[:B]
        rows = torch.arange(B, device=tokens.device)
        h = llm.model.embed_tokens(tokens[:, None])  # (B, 1, D)
        cos, sin = llm.model.rotary_emb(h, positions[:, None])
        visible = (torch.arange(S, device=tokens.device)[None, :] <= positions[:, None]).view(B, 1, 1, S)
        rep = self.heads // self.kv_heads
        media_rows = has_media.view(B, 1, 1)
        for i, layer in enumerate(self.layers):
            if i in self.blocks:
                j, block = self.blocks[i]
                h = torch.where(media_rows, self._xattn(block, h, media_k[j], media_v[j], media_len), h)
            attn = layer.self_attn
            residual = h
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(B, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(B, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(B, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k_cache[i].index_put_((rows, positions), k[:, :, 0])
            v_cache[i].index_put_((rows, positions), v[:, :, 0])
            keys = k_cache[i].transpose(1, 2)  # (B, kv_heads, S, head_dim)
            values = v_cache[i].transpose(1, 2)
            # One query per row: the heads sharing a key/value head are that head's queries.
            out = F.scaled_dot_product_attention(
                q.reshape(B, self.kv_heads, rep, self.head_dim), keys, values, attn_mask=visible, scale=attn.scaling
            )
            out = attn.o_proj(out.reshape(B, 1, self.heads * self.head_dim))
            h = residual + out
            residual = h
            h = residual + layer.mlp(layer.post_attention_layernorm(h))
        h = llm.model.norm(h)
        return llm.lm_head(h)[:, 0].float()
