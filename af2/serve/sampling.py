"""Next tokens of a decode step from its logits, each row by its own request's settings.

Greedy rows (temperature 0) take the argmax, as ``model.generate(do_sample=False)``; sampled rows
divide by their temperature, keep the smallest set of tokens whose probability reaches ``top_p``
(transformers' top-p filter) and draw from their own ``torch.Generator``, so a seeded request
draws the same tokens whatever runs beside it. Suppressed tokens (``<audio>``) are never chosen.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from af2.serve.protocol import SamplingParams


def request_generator(params: SamplingParams, device: torch.device) -> Optional[torch.Generator]:
    """The generator a sampled request draws from (seeded with ``params.seed``, else at random); None for greedy."""
    if params.temperature == 0:
        return None
    g = torch.Generator(device=device)
    if params.seed is not None:
        g.manual_seed(int(params.seed))
    else:
        g.seed()
    return g


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """logits (V,) -> the same with -inf outside the nucleus of mass ``top_p`` (at least one token kept)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[-1] = False
    return logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))


def next_tokens(
    logits: torch.Tensor,
    params: Sequence[Optional[SamplingParams]],
    generators: Sequence[Optional[torch.Generator]],
    suppress: Sequence[int],
) -> list[Optional[int]]:
    """logits (B, V) float32; params / generators per row (None: an idle row) -> token ids per row."""
    logits = logits.clone()
    if suppress:
        logits[:, list(suppress)] = float("-inf")
    greedy = logits.argmax(dim=-1).tolist()
    out: list[Optional[int]] = []
    for row, p in enumerate(params):
        if p is None:
            out.append(None)
        elif p.temperature == 0:
            out.append(int(greedy[row]))
        else:
            scores = top_p_filter(logits[row] / p.temperature, p.top_p)
            probs = scores.softmax(dim=-1)
            out.append(int(torch.multinomial(probs, 1, generator=generators[row]).item()))
    return out
