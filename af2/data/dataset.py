"""A map-style dataset of manifest samples: reads each sample's audio span, never raises.

``dataset[i]`` is an :class:`AudioItem` (the span as a ``(T,)`` float32 16 kHz wave,
``T <= max_windows * 160000``) or, when the audio is unusable, a
:class:`~af2.data.report.Skipped` record with the reason. Spans longer than
``max_windows`` windows are cut to fit, flagged ``truncated`` and logged; with
``skip_truncated_long_audio=True`` a sample marked ``"long_audio": true`` in the manifest
(the synthetic long scenes: their answers are about the whole recording, so a cut copy would
teach wrong answers) is skipped instead (kind ``truncated_long_audio``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from af2.audio.io import AudioError, probe, read_audio
from af2.audio.windows import count_windows
from af2.data.manifest import Sample, load_manifest
from af2.data.report import Skipped

log = logging.getLogger(__name__)


@dataclass
class AudioItem:
    """One usable sample: its dataset ``index``, manifest :class:`Sample`, ``wave`` ``(T,)``,
    ``truncated`` (span longer than ``max_windows`` windows) and the span's full ``seconds``."""

    index: int
    sample: Sample
    wave: torch.Tensor
    truncated: bool
    seconds: float


class AudioQADataset(Dataset):
    """Samples of a manifest (or a list of :class:`Sample`) with their audio."""

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        max_windows: int,
        sample_rate: int = 16000,
        window_seconds: float = 10.0,
        peak_normalize: bool = False,
        skip_truncated_long_audio: bool = False,
    ):
        self.samples = list(samples)
        self.skip_truncated_long_audio = skip_truncated_long_audio
        self.max_windows = max_windows
        self.sample_rate = sample_rate
        self.window_seconds = window_seconds
        self.peak_normalize = peak_normalize
        self.manifest_errors: list = []

    @classmethod
    def from_manifest(cls, path: str | Path, **kwargs) -> "AudioQADataset":
        """Load a manifest; its bad lines are logged and kept in ``manifest_errors``."""
        result = load_manifest(path)
        for err in result.errors:
            log.warning("%s: %s", path, err)
        ds = cls(result.samples, **kwargs)
        ds.manifest_errors = result.errors
        return ds

    def __len__(self) -> int:
        return len(self.samples)

    def span_seconds(self, index: int) -> float:
        """Seconds of audio sample ``index`` asks for (header only); raises AudioError."""
        s = self.samples[index]
        if s.start is not None and s.end is not None:
            return s.end - s.start
        total = _probe_duration(str(s.audio))
        return (s.end if s.end is not None else total) - (s.start or 0.0)

    def window_counts(self) -> list[int]:
        """Windows each sample will occupy (``1`` for unreadable ones: they are skipped later)."""
        counts = []
        for i in range(len(self)):
            try:
                seconds = self.span_seconds(i)
            except AudioError:
                seconds = 0.0
            counts.append(count_windows(seconds, window_seconds=self.window_seconds, max_windows=self.max_windows))
        return counts

    def _load(self, index: int) -> AudioItem:
        s = self.samples[index]
        start = s.start or 0.0
        seconds = self.span_seconds(index)
        limit = self.max_windows * self.window_seconds
        truncated = seconds > limit + 1.0 / self.sample_rate
        if truncated and self.skip_truncated_long_audio and s.extra.get("long_audio"):
            raise _TruncatedLongAudio(
                s.audio,
                f"{seconds:.1f} s long-audio sample (answers about the whole "
                f"recording) > max_windows={self.max_windows} ({limit:.0f} s)",
            )
        end = start + limit if truncated else s.end
        wave = read_audio(s.audio, start=s.start, end=end, target_sr=self.sample_rate)
        wave = wave[: int(limit * self.sample_rate)]
        if truncated:
            log.warning(
                "sample %s: %.1f s of audio, keeping the first %.1f s (max_windows=%d)",
                s.id,
                seconds,
                limit,
                self.max_windows,
            )
        if self.peak_normalize:
            peak = wave.abs().max()
            if peak > 0:
                wave = wave / peak
        return AudioItem(index, s, wave, truncated, seconds)

    def __getitem__(self, index: int) -> AudioItem | Skipped:
        s = self.samples[index]
        try:
            return self._load(index)
        except AudioError as e:
            return Skipped(index, s.id, str(s.audio), e.kind, e.reason)
        except Exception as e:  # never crash an epoch; report it loudly instead
            log.exception("unexpected error reading sample %s (%s)", s.id, s.audio)
            return Skipped(index, s.id, str(s.audio), "unexpected", f"{type(e).__name__}: {e}")


class _TruncatedLongAudio(AudioError):
    kind = "truncated_long_audio"


@lru_cache(maxsize=65536)
def _probe_duration(path: str) -> float:
    return probe(path).duration
