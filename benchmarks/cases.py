"""Benchmark inputs shared by the pytest-benchmark suites and the report script."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from af2 import reference as R
from af2.ops import media_cross_attention, media_key_ranges

# docs/design.md targets: B = 4, Lq = 512, Lk in {192, 576, 1920}, H = 8, Dh = 64
MEDIA_ATTN_SHAPES = {f"Lk{lk}": dict(B=4, Lq=512, Lk=lk, H=8, Dh=64) for lk in (192, 576, 1920)}


def media_attn_case(B, Lq, Lk, H, Dh, device, dtype, requires_grad=False, seed=0):
    """Two media per sample (`<audio>` at 0 and Lq/2, Lk/2 keys each, the second with its last
    quarter padded), immediate attention: every query attends about Lk/2 keys, none is empty."""
    g = torch.Generator().manual_seed(seed)
    mk = lambda L: torch.randn(B, L, H, Dh, generator=g).to(device=device, dtype=dtype).requires_grad_(requires_grad)
    q, k, v = mk(Lq), mk(Lk), mk(Lk)
    n = Lk // 2
    loc = torch.zeros(B, Lq, dtype=torch.bool)
    loc[:, [0, Lq // 2]] = True
    counts = torch.tensor([[n, n - n // 4]]).expand(B, 2)
    ks, ke = media_key_ranges(loc, counts, slot_size=n)
    pad = (torch.arange(n)[None, None] < counts[..., None]).reshape(B, 2 * n)
    return q, k, v, ks.to(device), ke.to(device), pad.to(device)


def media_attn_impls(q, k, v, ks, ke, pad):
    """name -> callable computing the attention output (B, Lq, H, Dh) by each implementation."""
    mask = R.media_attention_mask(ks, ke, k.shape[1], pad)[:, None]  # (B, 1, Lq, Lk)
    t = lambda x: x.transpose(1, 2)
    return {
        "af2": lambda: media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad),
        "eager": lambda: R.media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad),
        "sdpa_mask": lambda: t(F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=mask)),
        "sdpa_nomask": lambda: t(F.scaled_dot_product_attention(t(q), t(k), t(v))),
    }
