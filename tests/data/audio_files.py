"""Small audio files for tests, written with soundfile in a temp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def tone(seconds: float, sr: int = 16000, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A sine of ``seconds`` at ``sr``: ``(T,)`` or ``(T, channels)`` (channel k scaled by 1/(k+1))."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return x
    return np.stack([x / (k + 1) for k in range(channels)], axis=1)


def write(path: Path, data: np.ndarray, sr: int = 16000, subtype: str | None = None) -> Path:
    """Write by extension (wav/flac: 16-bit PCM unless ``subtype``, ogg: Vorbis, mp3)."""
    format_, default = FORMATS[path.suffix.lstrip(".")]
    sf.write(str(path), data, sr, format=format_, subtype=subtype or default)
    return path


def truncate(path: Path, out: Path, fraction: float = 0.5) -> Path:
    raw = path.read_bytes()
    out.write_bytes(raw[: int(len(raw) * fraction)])
    return out
