"""Audio file reading: any libsndfile format to a 16 kHz mono float32 tensor.

:func:`read_audio` opens a file with soundfile (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...),
seeks to ``start`` and reads only the frames up to ``end`` in blocks, mixing each block
down to mono (channel mean) and resampling it with a streaming soxr resampler, so memory
grows with the span read, never with the file: a 30-s window of a one-hour file costs
about 30 s of audio.

Every bad input raises an :class:`AudioError` subclass naming the path and the reason;
its ``kind`` is a short stable string the data loader counts in its report:

=====================  ======================================================
kind                   raised for
=====================  ======================================================
``missing``            the path does not exist or is not a file
``unsupported_format`` libsndfile does not recognise the format / extension
``corrupt``            the file is truncated or fails to decode
``empty``              the file holds zero frames
``non_finite``         NaN or infinite samples in the span read
``too_many_channels``  more channels than ``max_channels`` (default 32)
``bad_sample_rate``    sample rate outside [4 kHz, 768 kHz]
``bad_range``          ``start``/``end`` outside the file or ``end <= start``
=====================  ======================================================
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

TARGET_SR = 16000
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768000
MAX_CHANNELS = 32
BLOCK_FRAMES = 1 << 18  # frames decoded per block (256 Ki)
# Tolerance for a short read against the header's frame count (MP3 counts are estimates).
_SHORT_READ_FRAMES = 4096
_END_TOLERANCE_S = 0.1
SUPPORTED_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".aiff",
        ".aif",
        ".aifc",
        ".au",
        ".snd",
        ".w64",
        ".rf64",
        ".caf",
    }
)


class AudioError(Exception):
    """An audio file that cannot be used; ``path``, ``reason`` and a stable ``kind``."""

    kind = "error"

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AudioMissingError(AudioError):
    kind = "missing"


class AudioFormatError(AudioError):
    kind = "unsupported_format"


class AudioCorruptError(AudioError):
    kind = "corrupt"


class AudioEmptyError(AudioError):
    kind = "empty"


class AudioNonFiniteError(AudioError):
    kind = "non_finite"


class AudioChannelsError(AudioError):
    kind = "too_many_channels"


class AudioSampleRateError(AudioError):
    kind = "bad_sample_rate"


class AudioRangeError(AudioError):
    kind = "bad_range"


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file (nothing decoded)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _riff_truncation(path: Path) -> str | None:
    """For RIFF/WAVE files: a reason if the header promises more bytes than the file has.

    libsndfile quietly shortens a truncated WAV to what is there, so this is checked here.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        riff_size = struct.unpack("<I", head[4:8])[0]
        if riff_size in (0, 0xFFFFFFFF):  # streamed / RF64 placeholder
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if pos + 8 + chunk_size > size:
                    return (
                        f"truncated: the data chunk declares {chunk_size} bytes but only {size - pos - 8} are present"
                    )
                return None
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def probe(path: str | os.PathLike, *, max_channels: int = MAX_CHANNELS) -> AudioInfo:
    """Read and check an audio file's header; raises an :class:`AudioError` when unusable."""
    path = Path(path)
    if not path.exists():
        raise AudioMissingError(path, "file not found")
    if not path.is_file():
        raise AudioMissingError(path, "not a regular file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        msg = str(e)
        if "not recognised" in msg or "not recognized" in msg:
            ext = path.suffix.lower() or "(none)"
            hint = "" if ext in SUPPORTED_EXTENSIONS else f" (extension {ext} is not a supported audio format)"
            raise AudioFormatError(path, f"format not recognised{hint}") from None
        raise AudioCorruptError(path, f"cannot open: {msg}") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioSampleRateError(
            path, f"sample rate {info.samplerate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz"
        )
    if info.channels < 1 or info.channels > max_channels:
        raise AudioChannelsError(path, f"{info.channels} channels (at most {max_channels} supported)")
    if info.frames <= 0:
        raise AudioEmptyError(path, "file holds zero audio frames")
    truncated = _riff_truncation(path)
    if truncated:
        raise AudioCorruptError(path, truncated)
    return AudioInfo(path, info.samplerate, info.channels, info.frames, info.format, info.subtype)


def _frame_range(info: AudioInfo, start: float | None, end: float | None) -> tuple[int, int]:
    """(first, stop) frame indices of [start, end) seconds; raises AudioRangeError."""
    sr = info.sample_rate
    first = 0 if start is None else int(round(start * sr))
    stop = info.frames if end is None else int(round(end * sr))
    if start is not None and (start < 0 or first >= info.frames):
        raise AudioRangeError(info.path, f"start {start:.3f} s is outside the file ({info.duration:.3f} s)")
    if end is not None and end > info.duration + _END_TOLERANCE_S:
        raise AudioRangeError(info.path, f"end {end:.3f} s is past the end of the file ({info.duration:.3f} s)")
    stop = min(stop, info.frames)
    if stop <= first:
        raise AudioRangeError(info.path, f"empty span: start {start} s, end {end} s")
    return first, stop


def _decode_mono(f: sf.SoundFile, info: AudioInfo, first: int, stop: int, target_sr: int) -> np.ndarray:
    """Decode frames [first, stop) block by block: mono mixdown, streaming resample."""
    resampler = (
        None
        if info.sample_rate == target_sr
        else soxr.ResampleStream(info.sample_rate, target_sr, 1, dtype="float32", quality="HQ")
    )
    mix = np.full(info.channels, 1.0 / info.channels, dtype=np.float32)
    pieces: list[np.ndarray] = []
    pos = first
    if first:
        f.seek(first)
    while pos < stop:
        want = min(BLOCK_FRAMES, stop - pos)
        block = f.read(want, dtype="float32", always_2d=True)
        got = block.shape[0]
        mono = block[:, 0] if info.channels == 1 else block @ mix  # channel mean (BLAS)
        bad = ~np.isfinite(mono)
        if bad.any():
            at = (pos + int(np.argmax(bad))) / info.sample_rate
            raise AudioNonFiniteError(
                info.path, f"{int(bad.sum())} NaN/inf sample(s) in the span read (first at {at:.3f} s)"
            )
        pos += got
        last = got < want or pos >= stop
        pieces.append(mono if resampler is None else resampler.resample_chunk(mono, last=last))
        if got < want:
            break
    missing = stop - pos
    if missing > max(_SHORT_READ_FRAMES, 0.01 * (stop - first)):
        raise AudioCorruptError(
            info.path,
            f"truncated: decoded {pos - first} of {stop - first} frames requested (header says {info.frames})",
        )
    return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]


def read_audio(
    path: str | os.PathLike,
    *,
    start: float | None = None,
    end: float | None = None,
    target_sr: int = TARGET_SR,
    max_channels: int = MAX_CHANNELS,
) -> torch.Tensor:
    """Read ``[start, end)`` seconds of ``path`` as mono float32 at ``target_sr``.

    Returns a ``(T,)`` float32 tensor, ``T ≈ (end - start) * target_sr``; values are as
    decoded (integer PCM maps to [-1, 1)), not normalised. Only the requested frames are
    decoded. Raises an :class:`AudioError` subclass for every bad input (see module doc).
    """
    if start is not None and end is not None and end <= start:
        raise AudioRangeError(Path(path), f"end ({end} s) must be greater than start ({start} s)")
    info = probe(path, max_channels=max_channels)
    first, stop = _frame_range(info, start, end)
    try:
        with sf.SoundFile(str(info.path)) as f:
            mono = _decode_mono(f, info, first, stop, target_sr)
    except sf.LibsndfileError as e:
        raise AudioCorruptError(info.path, f"decoding failed: {e}") from None
    if mono.size == 0:
        raise AudioEmptyError(info.path, "no samples decoded")
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def duration_seconds(path: str | os.PathLike) -> float:
    """Duration in seconds from the header (no decoding); raises AudioError."""
    return probe(path).duration
