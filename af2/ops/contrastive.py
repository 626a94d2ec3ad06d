"""Contrastive loss with M positive captions and M x N hard negatives per audio.

Semantics are fixed in docs/design.md. audio (B, D); text (B, M, D); hard_negatives (B, M, N, D);
logit scale s. With S(x, y) = s <x, y>:
  audio->text term (i, j): -S(a_i, t_ij) + log( exp S(a_i, t_ij) + sum_{k != i, m} exp S(a_i, t_km)
                                               + sum_n exp S(a_i, h_ijn) )
  text->audio term (i, j): -S(t_ij, a_i) + log sum_k exp S(t_ij, a_k)
loss = (mean of a2t terms + mean of t2a terms) / 2. With M = 1 and no negatives this is CLIP/CLAP's
symmetric InfoNCE. Tiled with online log-sum-exps: memory grows with B, not B^2.

On CUDA, bf16 / fp16 inputs with D % 16 == 0 (D <= 1024) run tensor-core tile kernels; float32 /
float64 and other D run generic SIMT kernels. AF2_CONTRASTIVE_KERNEL=simt forces the SIMT kernels
(read on every call), e.g. to compare the two.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from af2.ops._checks import check_same_device

__all__ = ["contrastive_loss"]


def contrastive_loss(
    audio: torch.Tensor,
    text: torch.Tensor,
    *,
    logit_scale: Union[float, torch.Tensor],
    hard_negatives: Optional[torch.Tensor] = None,
    reduction: str = "mean",
    group=None,
) -> torch.Tensor:
    """The AF-CLAP contrastive loss (embeddings used as given: callers L2-normalise).

    Args:
        audio: (B, D) float32 / float16 / bfloat16 (float64 too).
        text: (B, M, D): M positive captions (paraphrases) per audio; the other paraphrases of
            the same audio are not negatives.
        logit_scale: the multiplier s, a float or a differentiable scalar tensor (on audio's
            device or the CPU).
        hard_negatives: (B, M, N, D) or None: N negatives for each positive pair.
        reduction: "mean" (a scalar) or "none" (the (2, B, M) terms: [0] audio->text,
            [1] text->audio; their mean is the "mean" loss).
        group: a torch.distributed process group. When torch.distributed is initialised with
            more than one process (this group, or the default one), every rank passes its local
            shard (equal B on every rank) and the loss runs over the global batch: embeddings are
            all-gathered with autograd (open_clip's local-loss scheme), and this rank's terms are
            returned. Averaging gradients over ranks (as DDP does) gives the single-process
            gradients of the whole batch.

    Returns:
        The loss (float32; float64 for float64 inputs), a scalar or (2, B, M).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"contrastive_loss: reduction must be 'mean' or 'none', got {reduction!r}")
    scale = (
        logit_scale
        if isinstance(logit_scale, torch.Tensor)
        else torch.tensor(float(logit_scale), dtype=torch.float32, device=audio.device)
    )
    audio_all, text_all, offset = _global_batch(audio, text, group)
    terms = torch.ops.af2.contrastive_loss(audio, text, audio_all, text_all, hard_negatives, scale, offset)[0]
    return terms.mean() if reduction == "mean" else terms


def _global_batch(audio: torch.Tensor, text: torch.Tensor, group):
    """(audio_all, text_all, offset): the gathered batch and this rank's first row in it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return audio, text, 0
    world = dist.get_world_size(group)
    if world == 1:
        return audio, text, 0
    rank = dist.get_rank(group)
    audio_all = _all_gather_autograd(audio.contiguous(), group or dist.group.WORLD)
    text_all = _all_gather_autograd(text.contiguous(), group or dist.group.WORLD)
    if audio_all.shape[0] != world * audio.shape[0]:
        raise ValueError(
            f"contrastive_loss: every rank must hold the same B, got {audio.shape[0]} here and "
            f"{audio_all.shape[0]} in all over {world} ranks"
        )
    return audio_all, text_all, rank * audio.shape[0]


def _all_gather_autograd(t: torch.Tensor, group) -> torch.Tensor:
    """Concatenate every rank's t along dim 0; the backward sums the gradients of all ranks.

    Uses the synchronous autograd all-gather of torch.distributed.nn: every collective has finished
    when it returns, so no asynchronous work outlives the step (the functional collectives leave
    work objects that can abort a gloo process at exit).
    """
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t, group=group), dim=0)


def _named(audio, text, audio_all, text_all, hard_negatives, logit_scale):
    return [
        ("audio", audio),
        ("text", text),
        ("audio_all", audio_all),
        ("text_all", text_all),
        ("hard_negatives", hard_negatives),
        ("logit_scale", logit_scale),
    ]


@torch.library.register_fake("af2::contrastive_loss")
def _fake(audio, text, audio_all, text_all, hard_negatives, logit_scale, offset):
    check_same_device(
        "contrastive_loss",
        _named(audio, text, audio_all, text_all, hard_negatives, logit_scale),
        cpu_ok=("logit_scale",),
    )
    B, M, _ = text.shape
    acc = torch.float64 if audio.dtype == torch.float64 else torch.float32
    return (
        audio.new_empty((2, B, M), dtype=acc),
        audio.new_empty((B,), dtype=acc),
        audio.new_empty((B, M), dtype=acc),
        audio.new_empty((B, M), dtype=acc),
    )


@torch.library.register_fake("af2::contrastive_loss_backward")
def _fake_backward(
    grad_terms, audio, text, audio_all, text_all, hard_negatives, logit_scale, offset, row_lse, pair_lse, col_lse
):
    check_same_device(
        "contrastive_loss_backward",
        _named(audio, text, audio_all, text_all, hard_negatives, logit_scale)
        + [("grad_terms", grad_terms), ("row_lse", row_lse), ("pair_lse", pair_lse), ("col_lse", col_lse)],
        cpu_ok=("logit_scale",),
    )
    d_neg = torch.empty_like(hard_negatives) if hard_negatives is not None else audio.new_empty((0,))
    return (
        torch.empty_like(audio),
        torch.empty_like(text),
        torch.empty_like(audio_all),
        torch.empty_like(text_all),
        d_neg,
        torch.empty_like(logit_scale, device=audio.device),
    )


def _setup_context(ctx, inputs, output):
    audio, text, audio_all, text_all, hard_negatives, logit_scale, offset = inputs
    _, row_lse, pair_lse, col_lse = output
    ctx.save_for_backward(audio, text, audio_all, text_all, hard_negatives, logit_scale, row_lse, pair_lse, col_lse)
    ctx.offset = offset
    ctx.has_neg = hard_negatives is not None
    ctx.mark_non_differentiable(row_lse, pair_lse, col_lse)


def _backward(ctx, grad_terms, _g1, _g2, _g3):
    audio, text, audio_all, text_all, hard_negatives, logit_scale, row_lse, pair_lse, col_lse = ctx.saved_tensors
    d_audio, d_text, d_audio_all, d_text_all, d_neg, d_scale = torch.ops.af2.contrastive_loss_backward(
        grad_terms,
        audio,
        text,
        audio_all,
        text_all,
        hard_negatives,
        logit_scale,
        ctx.offset,
        row_lse,
        pair_lse,
        col_lse,
    )
    return d_audio, d_text, d_audio_all, d_text_all, (d_neg if ctx.has_neg else None), d_scale, None


torch.library.register_autograd("af2::contrastive_loss", _backward, setup_context=_setup_context)
