"""Batched autoregressive decoding of the Qwen2 LLM with its KV cache (AF2's ``generate`` loop).

The caller has cached each xattn block's media keys/values (``block.cache_media``); every call here
passes ``MediaInputs(cached=True)`` with the `<audio>` positions of its own tokens, so a decode step
runs only the new token through the LLM and never touches the audio path.
"""
from __future__ import annotations

import functools
import inspect
from typing import Optional

import torch

from af2.model.llm import MEDIA_KWARG, MediaInputs


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """position_ids (B, S) counting real tokens only, so left padding does not shift positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def decode(llm, ids: torch.Tensor, mask: torch.Tensor, token_ids: dict, max_new_tokens: int, *,
           do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           generator: Optional[torch.Generator] = None, media: bool = True) -> torch.Tensor:
    """ids (B, P) left-padded prompts, mask (B, P) -> new ids (B, N <= max_new_tokens). A row stops
    at ``token_ids["eoc"]`` or ``["eos"]`` and is padded with ``["pad"]`` after; ``["audio"]`` is
    never generated. ``media=False``: text only, the LLM runs without the xattn blocks."""
    t = token_ids
    stop = torch.tensor(sorted({t["eoc"], t["eos"]}), device=ids.device)
    pick = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    pos = positions(mask)

    def media_kwargs(tokens: torch.Tensor) -> dict:
        return {MEDIA_KWARG: MediaInputs(None, None, tokens == t["audio"], cached=True)} if media else {}

    out = llm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **media_kwargs(ids))
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    new = []
    for _ in range(max_new_tokens):
        token = next_token(out.logits[:, -1].float(), banned=t["audio"], **pick)
        token = torch.where(done, torch.full_like(token, t["pad"]), token)
        new.append(token)
        done |= torch.isin(token, stop)
        if bool(done.all()) or len(new) == max_new_tokens:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        pos = pos[:, -1:] + 1
        out = llm(input_ids=token[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                  **_cache_kwargs(llm, out), **media_kwargs(token[:, None]))
    return torch.stack(new, dim=1) if new else ids.new_zeros(ids.shape[0], 0)


@functools.lru_cache(maxsize=None)
def _cache_keyword(llm_type: type) -> str:
    """transformers >= 5 calls the KV cache ``cache``; earlier versions ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(llm_type.forward).parameters else "past_key_values"


def _cache_kwargs(llm, out) -> dict:
    """The KV cache of ``out`` as the keyword this transformers version's forward takes."""
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = out.past_key_values
    return {_cache_keyword(type(llm)): cache}


def next_token(logits: torch.Tensor, *, banned: int, do_sample: bool, temperature: float, top_k: int,
               top_p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """logits (B, V) float32 -> token ids (B,): greedy, or sampled with temperature/top-k/top-p."""
    logits = logits.clone()
    logits[:, banned] = float("-inf")
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits / max(temperature, 1e-6)
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p       # keep the smallest set reaching top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
