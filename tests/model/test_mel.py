"""LogMel against an independent numpy log-mel (torchaudio's HTK filter formula, rfft frames)."""

from __future__ import annotations

import numpy as np
import torch

from af2.model.config import MelConfig
from af2.model.mel import LogMel


def _numpy_logmel(wave: np.ndarray, cfg: MelConfig) -> np.ndarray:
    n_fft, hop = cfg.n_fft, cfg.hop_length
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    frames = 1 + (len(padded) - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2  # (frames, F)
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    pts = 700.0 * (10 ** (np.linspace(mel(cfg.f_min), mel(cfg.f_max), cfg.n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, cfg.sample_rate / 2, n_fft // 2 + 1)
    fb = np.zeros((len(freqs), cfg.n_mels))
    for m in range(cfg.n_mels):
        down = (freqs - pts[m]) / (pts[m + 1] - pts[m])
        up = (pts[m + 2] - freqs) / (pts[m + 2] - pts[m + 1])
        fb[:, m] = np.maximum(0.0, np.minimum(down, up))
    return 10 * np.log10(np.maximum(power @ fb, 1e-10))


def test_matches_independent_numpy():
    cfg = MelConfig()
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    ours = LogMel(cfg)(torch.from_numpy(wave)).numpy()
    ref = _numpy_logmel(wave.astype(np.float64), cfg)
    assert ours.shape == ref.shape == (101, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=0)


def test_ten_second_window_shape_and_tone():
    cfg = MelConfig()
    t = torch.arange(160000) / 16000
    tone = torch.sin(2 * torch.pi * 1000.0 * t)
    out = LogMel(cfg)(torch.stack([tone, 0.5 * tone]))
    assert out.shape == (2, 1001, 64)
    # The loudest band holds 1 kHz, and halving the amplitude lowers it by 20·log10(2) dB.
    centres = (
        700.0
        * (10 ** (np.linspace(2595 * np.log10(1 + 50 / 700), 2595 * np.log10(1 + 8000 / 700), 66) / 2595.0) - 1.0)[1:-1]
    )
    assert abs(centres[int(out[0, 500].argmax())] - 1000.0) < 60.0
    torch.testing.assert_close(
        out[0, 500] - out[1, 500], torch.full((64,), 20 * np.log10(2.0)).float(), atol=1e-3, rtol=0
    )


def test_constants_stay_float32_when_the_model_is_cast():
    wave = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    mel = LogMel(MelConfig())
    ref = mel(wave)
    assert torch.equal(mel.to(torch.bfloat16)(wave), ref) and not list(mel.state_dict())
