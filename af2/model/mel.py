"""AF2's log-mel front end: ``torch.stft`` + transformers' mel filter bank.

Matches what AF2 feeds HTSAT (torchaudio ``MelSpectrogram(16000, n_fft=1024, win_length=1024,
hop_length=160, f_min=50, f_max=8000, n_mels=64, power=2, norm=None, mel_scale="htk")`` then
``AmplitudeToDB(top_db=None)``): periodic Hann window, centred frames with reflect padding,
power spectrum, HTK mel filters (triangles over Hz with mel-spaced corners, as torchaudio's
``melscale_fbanks``), ``10·log10(max(x, 1e-10))``.
A 10-s window of 160,000 samples gives 1 + 160000/160 = 1001 frames.
"""

from __future__ import annotations

import torch
from torch import nn

from af2.model.config import MelConfig


class LogMel(nn.Module):
    """waveforms (..., L) float -> log-mel (..., frames, n_mels) float32 in dB."""

    def __init__(self, cfg: MelConfig):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.cfg = cfg
        fb = mel_filter_bank(
            num_frequency_bins=cfg.n_fft // 2 + 1,
            num_mel_filters=cfg.n_mels,
            min_frequency=cfg.f_min,
            max_frequency=cfg.f_max,
            sampling_rate=cfg.sample_rate,
            norm=None,
            mel_scale="htk",
            triangularize_in_mel_space=False,
        )
        # Constants rebuilt from the config: not in the state_dict, and kept in float32 on the CPU
        # (model.to(bfloat16) must not round them); copied once to each device that uses them.
        with torch.device("cpu"):
            self._constants = {
                "cpu": (torch.hann_window(cfg.n_fft, dtype=torch.float32), torch.as_tensor(fb, dtype=torch.float32))
            }  # window (n_fft,), filters (F, M)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._constants:
            self._constants[key] = tuple(t.to(device) for t in self._constants["cpu"])
        return self._constants[key]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        lead = wave.shape[:-1]
        x = wave.reshape(-1, wave.shape[-1]).float()
        window, filters = self._on(x.device)
        spec = torch.stft(
            x,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.n_fft,
            window=window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (N, F, frames)
        mel = torch.matmul(power.transpose(1, 2), filters)  # (N, frames, M)
        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        return db.reshape(*lead, db.shape[-2], db.shape[-1])
