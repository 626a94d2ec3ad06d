"""af2's hand-written greedy decoding loop from before the model used transformers' GenerationMixin.

Kept as the baseline that ``model.generate`` is measured against (benchmarks/test_generate_bench.py,
the GPU report's inference row) and checked against (tests/model/test_generation.py): a KV cache,
each block's media keys/values computed once, ``<audio>`` never generated, stop at
``<|endofchunk|>`` or eos.

    greedy_loop(model, input_ids (B, P), attention_mask (B, P), audio_windows (B, W, L) or
                dense_features (B, W, n, D), audio_window_mask (B, W), max_new_tokens)
      -> new ids (B, N), N <= max_new_tokens, padded with the pad id after a row stops
"""

from __future__ import annotations

from typing import Optional

import torch

from af2.model.generation import positions
from af2.model.llm import MEDIA_KWARG, MediaInputs


@torch.no_grad()
def greedy_loop(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    audio_windows: Optional[torch.Tensor],
    audio_window_mask: torch.Tensor,
    max_new_tokens: int,
    *,
    dense_features: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    t = model.config.token_ids
    media, media_mask = model.encode_media(audio_windows, audio_window_mask, dense_features)
    for block in model.xattn.values():
        block.cache_media(media, media_mask)
    stop = torch.tensor(sorted({t["eoc"], t["eos"]}), device=input_ids.device)
    pos = positions(attention_mask)
    mask = attention_mask.long()
    ids = input_ids

    def media_kwargs(tokens: torch.Tensor) -> dict:
        return {MEDIA_KWARG: MediaInputs(None, None, tokens == t["audio"], cached=True)}

    try:
        out = model.llm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **media_kwargs(ids))
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        new = []
        for _ in range(max_new_tokens):
            logits = out.logits[:, -1].float().clone()
            logits[:, t["audio"]] = float("-inf")
            token = torch.where(done, torch.full_like(done, t["pad"], dtype=torch.long), logits.argmax(-1))
            new.append(token)
            done |= torch.isin(token, stop)
            if bool(done.all()) or len(new) == max_new_tokens:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            out = model.llm(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                cache=out.cache,
                **media_kwargs(token[:, None]),
            )
    finally:
        for block in model.xattn.values():
            block.clear_cache()
    return torch.stack(new, dim=1)
