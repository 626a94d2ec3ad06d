"""Random inputs in the model's format, for benchmarks, tests and smoke runs (no data needed).

:func:`random_lm_batch` is a batch of the LLM stages (pretrain, sft, long) with every key
:meth:`af2.model.AudioFlamingo2.forward` reads in training; :func:`random_token_ids` are prompts
without special tokens other than a leading ``<audio>``. Both draw from a ``torch.Generator``,
so a seed gives the same batch every time.
"""

from __future__ import annotations

import torch

from af2.text.sample import IGNORE_INDEX


def random_token_ids(model, B: int, S: int, generator: torch.Generator) -> torch.Tensor:
    """(B, S) random ordinary token ids (no special token), `<audio>` first.

    ``model``: an :class:`af2.model.AudioFlamingo2` (its ``config.token_ids`` are used)."""
    t = model.config.token_ids
    special = torch.tensor(sorted(set(t.values())))
    plain = next(i for i in range(len(special) + 1) if i not in special.tolist())
    ids = torch.randint(0, t["audio"], (B, S), generator=generator)
    ids[torch.isin(ids, special)] = plain
    ids[:, 0] = t["audio"]
    return ids


def random_lm_batch(
    model,
    *,
    B: int = 2,
    W: int = 1,
    S: int = 24,
    seed: int = 0,
    generator: torch.Generator | None = None,
    device=None,
) -> dict:
    """A random batch in the LLM stages' format: input_ids (B, S) of :func:`random_token_ids`,
    labels (B, S) on the second half (``IGNORE_INDEX`` elsewhere), attention_mask (B, S) bool,
    audio_windows (B, W, 160000) of quiet noise, audio_window_mask (B, W) bool. Drawn from
    ``generator`` (default: a new one seeded with ``seed``); on ``device`` when given."""
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    ids = random_token_ids(model, B, S, g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, S // 2 :] = ids[:, S // 2 :]
    batch = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids, dtype=torch.bool),
        labels=labels,
        audio_windows=0.1 * torch.randn(B, W, 160000, generator=g),
        audio_window_mask=torch.ones(B, W, dtype=torch.bool),
    )
    return batch if device is None else {k: v.to(device) for k, v in batch.items()}
