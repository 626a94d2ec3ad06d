"""split_windows / stack_windows: shapes, padding, masks, truncation warnings."""

from __future__ import annotations

import logging

import pytest
import torch

from af2.audio.windows import (
    KEY_BYTES,
    count_windows,
    split_windows,
    split_windows_batch,
    stack_windows,
    window_key,
    window_keys,
)

L = 160000


@pytest.mark.parametrize("seconds,expected", [(0.5, 1), (10.0, 1), (10.01, 2), (25.0, 3), (30.0, 3)])
def test_window_count_and_padding(seconds, expected):
    wave = torch.arange(1, int(seconds * 16000) + 1, dtype=torch.float32)
    w = split_windows(wave, max_windows=3)
    assert w.windows.shape == (3, L) and w.windows.dtype == torch.float32
    assert w.num_windows == expected == count_windows(seconds, max_windows=3)
    assert w.mask.tolist() == [k < expected for k in range(3)] and not w.truncated
    flat = w.windows.reshape(-1)
    assert torch.equal(flat[: wave.numel()], wave) and not flat[wave.numel() :].any()


def test_truncation_is_flagged_and_logged(caplog):
    wave = torch.ones(int(35.5 * 16000))
    with caplog.at_level(logging.WARNING, logger="af2.audio.windows"):
        w = split_windows(wave, max_windows=3, name="clip-7")
    assert w.truncated and w.num_windows == 3 and w.mask.all() and w.windows.all()
    assert "clip-7" in caplog.text and "dropping 5.5 s" in caplog.text
    assert count_windows(35.5, max_windows=3) == 3 and count_windows(35.5, max_windows=9) == 4


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        split_windows(torch.zeros(2, 10), max_windows=3)
    with pytest.raises(ValueError, match="empty"):
        split_windows(torch.zeros(0), max_windows=3)
    with pytest.raises(ValueError, match="max_windows"):
        split_windows(torch.zeros(10), max_windows=0)


def test_batched_variant_stacks_and_trims():
    waves = [torch.ones(16000 * 5), torch.ones(16000 * 15), torch.ones(16000 * 45)]
    full = split_windows_batch(waves, max_windows=9, trim=False)
    assert full.windows.shape == (3, 9, L) and full.mask.shape == (3, 9)
    assert full.num_windows.tolist() == [1, 2, 5] and full.mask.sum(1).tolist() == [1, 2, 5]
    trimmed = split_windows_batch(waves, max_windows=9)
    assert trimmed.windows.shape == (3, 5, L) and torch.equal(trimmed.mask, full.mask[:, :5])
    assert not trimmed.truncated.any()
    with pytest.raises(ValueError, match="share"):
        stack_windows([split_windows(waves[0], max_windows=3), split_windows(waves[0], max_windows=9)])


def test_window_key_is_content_dtype_and_length():
    w = torch.randn(1000)
    assert len(window_key(w)) == KEY_BYTES and window_key(w) == window_key(w.clone())
    assert window_key(w) != window_key(torch.cat([w[:999], w[999:] + 1e-6]))
    assert window_key(w) != window_key(w.double())
    assert window_key(torch.zeros(10)) != window_key(torch.zeros(11))


def test_window_keys_of_a_batch():
    windows = torch.randn(2, 3, 100)
    windows[1, 0] = windows[0, 2]
    mask = torch.tensor([[True, True, True], [True, False, False]])
    keys = window_keys(windows, mask)
    assert keys.shape == (2, 3, KEY_BYTES) and keys.dtype == torch.uint8
    assert bytes(keys[0, 1].tolist()) == window_key(windows[0, 1])
    assert torch.equal(keys[1, 0], keys[0, 2]) and not keys[1, 1:].any()  # same audio, same key; padding 0
    with pytest.raises(
        ValueError,
        match=r"windows must be \(B, W, L\) and mask \(B, W\), got windows "
        r"\(2, 3, 100\) and mask \(2, 2\)",
    ):
        window_keys(windows, mask[:, :2])
