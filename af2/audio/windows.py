"""Non-overlapping fixed-length windows, as AF2's audio encoder consumes them.

A waveform ``(T,)`` at 16 kHz is cut into ``W = ceil(T / L)`` windows of ``L = 160000``
samples (10 s); the last one is zero-padded. At most ``max_windows`` are kept (3 = 30 s,
9 = 1.5 min, 30 = 5 min); audio past that is dropped, ``truncated`` is set and a warning
is logged, so truncation is never silent. Windows are padded up to ``max_windows`` with
zero windows whose mask is False.

:func:`window_keys` gives each real window a content key (BLAKE2b-128 of its samples, dtype
and length): training's dense-feature cache (training.feature_cache) looks features up by it, and
on a GPU the loader's workers compute the keys as they build the batch.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class Windows:
    """One waveform's windows.

    windows: ``(W_max, L)`` float32, zero-padded; mask: ``(W_max,)`` bool, True where the
    window holds real audio; ``num_windows`` real windows; ``truncated`` if audio was cut.
    """

    windows: torch.Tensor
    mask: torch.Tensor
    num_windows: int
    truncated: bool


@dataclass
class BatchedWindows:
    """Several waveforms' windows: windows ``(B, W, L)``, mask ``(B, W)`` bool,
    num_windows ``(B,)`` int64, truncated ``(B,)`` bool."""

    windows: torch.Tensor
    mask: torch.Tensor
    num_windows: torch.Tensor
    truncated: torch.Tensor


def window_length(sample_rate: int = 16000, window_seconds: float = 10.0) -> int:
    """Samples per window, ``L = sample_rate * window_seconds`` (must be whole)."""
    length = sample_rate * window_seconds
    if length <= 0 or length != int(length):
        raise ValueError(f"sample_rate * window_seconds must be a positive whole number, got {length}")
    return int(length)


#: Bytes of a window's content key (:func:`window_key`).
KEY_BYTES = 16


def window_key(window: torch.Tensor) -> bytes:
    """A content key of one window (L,): BLAKE2b-128 of its bytes, dtype and length (copied to
    the CPU if it is elsewhere)."""
    arr = np.ascontiguousarray(window.detach().cpu().numpy())
    h = hashlib.blake2b(memoryview(arr).cast("B"), digest_size=KEY_BYTES)
    h.update(f"{arr.dtype}:{arr.shape[0]}".encode())
    return h.digest()


def window_keys(windows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """windows (B, W, L), mask (B, W) bool -> keys (B, W, KEY_BYTES) uint8: :func:`window_key` of
    each real window, zeros on padded ones."""
    if windows.dim() != 3 or mask.shape != windows.shape[:2]:
        raise ValueError(
            f"window_keys: windows must be (B, W, L) and mask (B, W), got windows "
            f"{tuple(windows.shape)} and mask {tuple(mask.shape)}"
        )
    keys = torch.zeros(*windows.shape[:2], KEY_BYTES, dtype=torch.uint8)
    for b, w in mask.nonzero().tolist():
        keys[b, w] = torch.frombuffer(bytearray(window_key(windows[b, w])), dtype=torch.uint8)
    return keys


def count_windows(duration_seconds: float, *, window_seconds: float = 10.0, max_windows: int) -> int:
    """Windows a clip of ``duration_seconds`` occupies: ``clamp(ceil(d / 10 s), 1, max_windows)``."""
    if max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")
    return max(1, min(max_windows, math.ceil(duration_seconds / window_seconds - 1e-9)))


def _check(wave: torch.Tensor, max_windows: int) -> None:
    if wave.dim() != 1:
        raise ValueError(f"wave must be 1-D (T,), got shape {tuple(wave.shape)}")
    if wave.numel() == 0:
        raise ValueError("wave is empty (T = 0)")
    if max_windows < 1:
        raise ValueError(f"max_windows must be >= 1, got {max_windows}")


def split_windows_batch(
    waves: Sequence[torch.Tensor],
    *,
    sample_rate: int = 16000,
    window_seconds: float = 10.0,
    max_windows: int,
    trim: bool = True,
    names: Sequence[str] | None = None,
) -> BatchedWindows:
    """Window each ``(T_i,)`` wave into one ``(B, W, L)`` tensor + ``(B, W)`` masks.

    ``W`` is the batch's largest window count (``trim``) or ``max_windows``. Each wave
    ``T_i > 0``; one longer than ``max_windows * L`` is cut, flagged and logged (with
    ``names[i]`` if given). The output is allocated once and filled in place.
    """
    if not waves:
        raise ValueError("split_windows_batch needs at least one wave")
    length = window_length(sample_rate, window_seconds)
    nums, truncated = [], []
    for i, wave in enumerate(waves):
        _check(wave, max_windows)
        num = math.ceil(wave.numel() / length)
        if num > max_windows:
            name = names[i] if names else None
            log.warning(
                "audio%s is %.1f s long; keeping the first %d window(s) (%.1f s) and dropping %.1f s",
                f" {name}" if name else "",
                wave.numel() / sample_rate,
                max_windows,
                max_windows * length / sample_rate,
                (wave.numel() - max_windows * length) / sample_rate,
            )
        nums.append(min(num, max_windows))
        truncated.append(num > max_windows)
    width = max(nums) if trim else max_windows
    out = torch.zeros(len(waves), width * length, dtype=torch.float32)
    for row, (wave, num) in enumerate(zip(waves, nums)):
        kept = min(wave.numel(), num * length)
        out[row, :kept] = wave[:kept]
    num_t = torch.tensor(nums, dtype=torch.int64)
    return BatchedWindows(
        windows=out.view(len(waves), width, length),
        mask=torch.arange(width)[None, :] < num_t[:, None],
        num_windows=num_t,
        truncated=torch.tensor(truncated, dtype=torch.bool),
    )


def split_windows(
    wave: torch.Tensor,
    *,
    sample_rate: int = 16000,
    window_seconds: float = 10.0,
    max_windows: int,
    name: str | None = None,
) -> Windows:
    """Cut ``wave`` ``(T,)`` into ``(max_windows, L)`` zero-padded windows plus a mask.

    ``T`` must be > 0. If ``T > max_windows * L`` the tail is dropped, ``truncated`` is
    True and a warning naming ``name`` (if given) is logged.
    """
    b = split_windows_batch(
        [wave],
        sample_rate=sample_rate,
        window_seconds=window_seconds,
        max_windows=max_windows,
        trim=False,
        names=[name] if name else None,
    )
    return Windows(b.windows[0], b.mask[0], int(b.num_windows[0]), bool(b.truncated[0]))


def stack_windows(items: Sequence[Windows], *, trim: bool = True) -> BatchedWindows:
    """Stack per-sample :class:`Windows` into ``(B, W, L)``.

    With ``trim`` (default) ``W`` is the batch's largest ``num_windows`` (windows that are
    padding for every sample are dropped); otherwise ``W`` is the common ``W_max``.
    """
    if not items:
        raise ValueError("stack_windows needs at least one item")
    shapes = {tuple(w.windows.shape) for w in items}
    if len(shapes) != 1:
        raise ValueError(f"all items must share (W_max, L); got {sorted(shapes)}")
    width = max(w.num_windows for w in items) if trim else items[0].windows.shape[0]
    return BatchedWindows(
        windows=torch.stack([w.windows[:width] for w in items]),
        mask=torch.stack([w.mask[:width] for w in items]),
        num_windows=torch.tensor([w.num_windows for w in items], dtype=torch.int64),
        truncated=torch.tensor([w.truncated for w in items], dtype=torch.bool),
    )
