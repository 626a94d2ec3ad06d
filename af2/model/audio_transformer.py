"""AF2's audio transformation: dense AF-CLAP features -> the cross-attention memory.

dense (B, W, n, D) -> (B, S = W·n, D) -> x·√D -> LayerNorm -> ``layers`` x [self-attention
(q, k, v, out projections without bias; RoPE on q and k by :func:`af2.ops.rope_windowed_qk`:
positions over the flattened (window, token) index, the first ``rotary_dim`` of each head's
dims, half-split pairs, base 4096; key padding mask from the window mask; SDPA) + residual ->
LayerNorm, then FFN (Linear, ReLU, Linear, with bias) + residual -> LayerNorm] (post-LN, eps
1e-6). As AF2's public ``TransformerEncoder(d_model=2048, n_layers=3, n_head=8, d_k=256,
d_inner=2048, scale_emb=True)``; the official names map 1:1 (see af2.model.importer).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from af2 import ops, reference
from af2.model.config import AudioTransformerConfig


class AudioSelfAttention(nn.Module):
    """x (B, S, D) -> (B, S, D); post-LN residual block."""

    def __init__(self, dim: int, cfg: AudioTransformerConfig):
        super().__init__()
        if dim % cfg.heads:
            raise ValueError(f"audio transformer width {dim} is not divisible by heads {cfg.heads}")
        self.heads, self.head_dim, self.cfg = cfg.heads, dim // cfg.heads, cfg
        if not (0 < cfg.rotary_dim <= self.head_dim and cfg.rotary_dim % 2 == 0):
            raise ValueError(f"rotary_dim {cfg.rotary_dim} must be even and in (0, head_dim {self.head_dim}]")
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim, eps=cfg.eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, window_size: int, fused: bool) -> torch.Tensor:
        B, S, D = x.shape
        shape = (B, S, self.heads, self.head_dim)
        q, k, v = self.q_proj(x).view(shape), self.k_proj(x).view(shape), self.v_proj(x).view(shape)
        rope = dict(window_size=window_size, base=self.cfg.rope_base, rotary_dim=self.cfg.rotary_dim)
        if fused:
            q, k = ops.rope_windowed_qk(q, k, **rope)
        else:
            q, k = reference.rope_windowed(q, **rope), reference.rope_windowed(k, **rope)
        attn = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=key_mask[:, None, None, :],
            dropout_p=self.cfg.dropout if self.training else 0.0,
        )
        out = self.dropout(self.out_proj(attn.transpose(1, 2).reshape(B, S, D)))
        return self.norm(x + out)


class AudioFeedForward(nn.Module):
    """x (B, S, D) -> (B, S, D): Linear(D, ffn) ReLU Linear(ffn, D), + residual, LayerNorm."""

    def __init__(self, dim: int, cfg: AudioTransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, dim)
        self.norm = nn.LayerNorm(dim, eps=cfg.eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.fc2(F.relu(self.fc1(x)))))


class AudioTransformerLayer(nn.Module):
    def __init__(self, dim: int, cfg: AudioTransformerConfig):
        super().__init__()
        self.attn = AudioSelfAttention(dim, cfg)
        self.ffn = AudioFeedForward(dim, cfg)

    def forward(self, x, key_mask, window_size, fused):
        return self.ffn(self.attn(x, key_mask, window_size, fused))


class AudioTransformer(nn.Module):
    """The audio transformation. ``fused`` picks af2's RoPE op or its eager twin."""

    def __init__(self, dim: int, cfg: AudioTransformerConfig, fused: bool = True):
        super().__init__()
        self.dim, self.fused = dim, fused
        self.norm = nn.LayerNorm(dim, eps=cfg.eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(AudioTransformerLayer(dim, cfg) for _ in range(cfg.layers))

    def forward(self, dense: torch.Tensor, window_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dense (B, W, n, D), window_mask (B, W) bool (True = real audio; None = all) ->
        (B, W·n, D). Padded windows are masked as keys; their outputs are not meaningful."""
        B, W, n, D = dense.shape
        if D != self.dim:
            raise ValueError(f"AudioTransformer: dense features must have width {self.dim}, got {tuple(dense.shape)}")
        if window_mask is None:
            window_mask = torch.ones(B, W, dtype=torch.bool, device=dense.device)
        if window_mask.shape != (B, W):
            raise ValueError(f"window_mask must be (B, W) = {(B, W)}, got {tuple(window_mask.shape)}")
        if not bool(window_mask.any(dim=1).all()):
            raise ValueError("every sample needs at least one valid audio window (window_mask row all False)")
        key_mask = window_mask.bool().repeat_interleave(n, dim=1)  # (B, S)
        x = self.norm(self.dropout(dense.reshape(B, W * n, D) * D**0.5))
        for layer in self.layers:
            x = layer(x, key_mask, n, self.fused)
        return x
