"""Media cross-attention: text queries attend to per-query ranges of media (audio) keys.

Semantics are fixed in docs/design.md. q (B, Lq, H, Dh), k/v (B, Lk, H, Dh): query i of batch b
attends keys j with key_start[b, i] <= j < key_end[b, i] and key_padding_mask[b, j] (if given);
a query with no key outputs exactly 0 and gets zero gradient. Flash-style: never forms Lq x Lk.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from af2.ops._checks import INT32_MAX, check_same_device, checked_int32, values_checkable

__all__ = ["media_cross_attention", "media_key_ranges", "media_key_ranges_from_time"]


def media_cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_start: torch.Tensor,
    key_end: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """Attention of each query over its own contiguous key range (and the padding mask).

    Args:
        q: (B, Lq, H, Dh) float32 / float16 / bfloat16 (float64 too); any strides.
        k, v: (B, Lk, H, Dh), q's dtype and device; any strides (e.g. views of a fused kv).
        key_start, key_end: (B, Lq) int32 (int64 is converted: on the CPU a value outside
            the int32 range raises ValueError naming it; where it cannot be read without a
            device sync it saturates): keys [start, end) of each query;
            0 <= start <= end <= Lk (checked on the CPU; the CUDA kernels clamp to [0, Lk]).
        key_padding_mask: (B, Lk) bool, True = valid key; None = all valid.
        scale: score multiplier, default Dh ** -0.5.

    Returns:
        (B, Lq, H, Dh), contiguous; exactly 0 for queries with no key.

    NaN in, NaN out (as the dense reference): a query attends the keys of its range that the
    padding mask keeps. If one of its attended scores q.k is NaN (a NaN in its q row or in an
    attended key's k row), its whole output row is NaN, and so are its dq row and the dk and dv
    rows of every key it attends; a NaN in v at an attended key makes that channel of its output
    NaN (and its dq row). A NaN q row leaves the other queries' outputs and dq as they were, and
    NaN in k at keys a query does not attend never reaches its output. A query with no key
    outputs exactly 0 and gets zero dq whatever q, k and v hold. Left open, as in the dense
    reference where 0 * NaN = NaN: what NaN in v at keys a query does not attend does to its
    output, what NaN in k or v at such keys does to its gradients, and dk / dv of keys the NaN
    query does not attend.

    On CUDA the backward of bfloat16 / float16 inputs with Dh 64 or 128 runs on tensor cores
    (fp32 accumulation); other cases, or the environment variable
    ``AF2_MEDIA_ATTN_BACKWARD=simt`` (read at every call), use the generic SIMT kernels.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5 if q.dim() > 0 else 1.0
    op = "media_cross_attention"
    out, _ = torch.ops.af2.media_cross_attention(
        q,
        k,
        v,
        checked_int32(op, "key_start", key_start),
        checked_int32(op, "key_end", key_end),
        key_padding_mask,
        float(scale),
    )
    return out


def media_key_ranges(
    media_locations: torch.Tensor,
    tokens_per_media: Union[int, torch.Tensor],
    only_attend_immediate_media: bool = True,
    *,
    slot_size: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key ranges of Flamingo-style media attention from `<audio>` token positions.

    Media t (0-based) occupies keys [t * slot_size, t * slot_size + slot_size) of the flattened
    media (B, T * slot_size); its first ``count[b, t]`` keys are valid. Text token i sees the
    media whose `<audio>` token is at or before i (``text_time = cumsum(media_locations)``):
    only the latest one (immediate) or all of them. Tokens before the first `<audio>` see none.

    Args:
        media_locations: (B, Lq) bool, True at each `<audio>` token.
        tokens_per_media: an int n (every media has n valid tokens; slot_size = n), or a
            (B, T) integer tensor of valid token counts per media (padded windows excluded),
            which requires ``slot_size`` (the n of the media tensor).
        only_attend_immediate_media: True (AF2) = attend only the latest media.
        slot_size: keys per media slot; needed with a counts tensor.

    Raises:
        ValueError: a count outside [0, slot_size], more `<audio>` tokens than media, or key
            indices past the int32 range of the kernels (T * slot_size > 2^31 - 1). Counts and
            token totals are checked where they can be read without a device sync (CPU tensors,
            eager mode); elsewhere counts are clamped to [0, slot_size] and range ends to
            2^31 - 1, never wrapped around.

    Returns:
        (key_start, key_end), each (B, Lq) int32. With all-previous attention the range spans
        earlier media whole, padding included: pass the padding as ``key_padding_mask``.
    """
    if media_locations.dim() != 2 or media_locations.dtype != torch.bool:
        raise ValueError(
            f"media_key_ranges: media_locations must be (B, Lq) bool, got {media_locations.dtype} "
            f"with sizes {list(media_locations.shape)}"
        )
    text_time = media_locations.cumsum(dim=1)  # (B, Lq) int64: number of media so far
    if isinstance(tokens_per_media, torch.Tensor):
        if slot_size is None:
            raise ValueError("media_key_ranges: slot_size is required when tokens_per_media is a (B, T) tensor")
        counts = tokens_per_media
    else:
        slot_size = int(tokens_per_media) if slot_size is None else slot_size
        if not 0 <= int(tokens_per_media) <= int(slot_size):
            raise ValueError(
                f"media_key_ranges: tokens_per_media must lie in [0, slot_size = {slot_size}], got {tokens_per_media}"
            )
        counts = torch.full((1, 1), int(tokens_per_media), device=text_time.device).expand(text_time.shape[0], -1)
    return media_key_ranges_from_time(
        text_time,
        counts,
        int(slot_size),
        only_attend_immediate_media,
        every_media_same=not isinstance(tokens_per_media, torch.Tensor),
    )


def media_key_ranges_from_time(
    text_time: torch.Tensor,
    counts: torch.Tensor,
    slot_size: int,
    only_attend_immediate_media: bool = True,
    *,
    every_media_same: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_start, key_end) int32 (B, Lq) from ``text_time`` (B, Lq), the number of media at or
    before each token (``cumsum`` of the `<audio>` positions, plus media seen by earlier calls
    when decoding), and ``counts`` (B, T), the valid tokens of each media slot of ``slot_size``
    keys. ``every_media_same``: counts is (B, 1) and applies to every media."""
    op = "media_key_ranges"
    B = text_time.shape[0]
    if counts.dim() != 2 or counts.shape[0] != B:
        raise ValueError(f"{op}: tokens_per_media must be (B, T) with B = {B}, got sizes {list(counts.shape)}")
    if counts.dtype.is_floating_point or counts.dtype.is_complex or counts.dtype == torch.bool:
        raise ValueError(f"{op}: tokens_per_media must hold integer counts, got {counts.dtype}")
    slot_size = int(slot_size)
    if not 0 <= slot_size <= INT32_MAX:
        raise ValueError(f"{op}: slot_size must lie in [0, {INT32_MAX}], got {slot_size}")
    T = counts.shape[1]
    if not every_media_same and T * slot_size > INT32_MAX:
        raise ValueError(
            f"{op}: T * slot_size = {T} * {slot_size} keys overflow the kernels' int32 key index (at most {INT32_MAX})"
        )
    if values_checkable(counts) and counts.numel():
        bad = (counts < 0) | (counts > slot_size)
        if bool(bad.any()):
            b, t = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{op}: tokens_per_media must lie in [0, slot_size = {slot_size}], got "
                f"{int(counts[b, t])} at [{b}, {t}]"
            )
    if values_checkable(text_time) and text_time.numel():
        most = int(text_time.max())
        if not every_media_same and most > T:
            raise ValueError(
                f"{op}: a sequence has {most} <audio> tokens but tokens_per_media holds counts for only T = {T} media"
            )
        if every_media_same and most * slot_size > INT32_MAX:
            raise ValueError(
                f"{op}: {most} media of slot_size = {slot_size} keys overflow the kernels' int32 "
                f"key index (at most {INT32_MAX})"
            )
    # Values that cannot be read here without a device sync are clamped: a count to its slot, a
    # range end to the int32 index range (never a wrap-around).
    idx = (text_time - 1).clamp(min=0, max=max(T - 1, 0))
    count = counts.to(text_time.device, torch.int64).clamp(0, slot_size).gather(1, idx if T else idx[:, :0])
    has_media = text_time > 0
    latest = (text_time - 1).clamp(min=0) * slot_size
    end = torch.where(has_media, latest + count, torch.zeros_like(latest)) if T else torch.zeros_like(latest)
    start = (
        torch.where(has_media, latest, torch.zeros_like(latest))
        if only_attend_immediate_media
        else torch.zeros_like(latest)
    )
    return start.clamp(max=INT32_MAX).to(torch.int32), end.clamp(max=INT32_MAX).to(torch.int32)


# ---- fake kernels -----------------------------------------------------------------------------


@torch.library.register_fake("af2::media_cross_attention")
def _fake(q, k, v, key_start, key_end, key_padding_mask, scale):
    check_same_device(
        "media_cross_attention",
        [
            ("q", q),
            ("k", k),
            ("v", v),
            ("key_start", key_start),
            ("key_end", key_end),
            ("key_padding_mask", key_padding_mask),
        ],
    )
    B, Lq, H, _ = q.shape
    return (
        torch.empty_like(q, memory_format=torch.contiguous_format),
        q.new_empty((B, H, Lq), dtype=torch.float64 if q.dtype == torch.float64 else torch.float32),
    )


@torch.library.register_fake("af2::media_cross_attention_backward")
def _fake_backward(grad_out, q, k, v, out, lse, key_start, key_end, key_padding_mask, scale):
    check_same_device(
        "media_cross_attention_backward",
        [
            ("q", q),
            ("grad_out", grad_out),
            ("k", k),
            ("v", v),
            ("out", out),
            ("lse", lse),
            ("key_start", key_start),
            ("key_end", key_end),
            ("key_padding_mask", key_padding_mask),
        ],
    )
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format) for t in (q, k, v))


# ---- autograd ---------------------------------------------------------------------------------


def _setup_context(ctx, inputs, output):
    q, k, v, key_start, key_end, key_padding_mask, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, key_start, key_end, key_padding_mask)
    ctx.scale = scale
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, key_start, key_end, key_padding_mask = ctx.saved_tensors
    dq, dk, dv = torch.ops.af2.media_cross_attention_backward(
        grad_out, q, k, v, out, lse, key_start, key_end, key_padding_mask, ctx.scale
    )
    return dq, dk, dv, None, None, None, None


torch.library.register_autograd("af2::media_cross_attention", _backward, setup_context=_setup_context)
