"""An ``input_audio`` part (``{"data": base64, "format": ...}``) -> a float32 waveform.

The bytes are decoded with soundfile (libsndfile: WAV, FLAC, MP3, OGG Vorbis/Opus, AIFF, ...);
the format field must name one of :data:`FORMATS`, and the bytes themselves decide how they are
read. The duration is read from the header first, so audio over the server's limit is refused
(413) before it is decoded. The waveform keeps its rate and channels; the engine's processor
makes it mono at the model's rate (docs/server.md).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Optional

import numpy as np

from af2.serve.errors import APIError

#: ``format`` values accepted (what libsndfile reads).
FORMATS = ("wav", "mp3", "flac", "ogg", "opus", "aiff", "aif", "caf", "w64", "au")
_DATA_URL = re.compile(r"^data:[^,;]*(;[^,;]*)*;base64,", re.IGNORECASE)


def decode_base64(data: str, param: str) -> bytes:
    """Standard base64 (a ``data:...;base64,`` prefix is allowed) -> bytes; 400 if it is not."""
    text = _DATA_URL.sub("", data.strip(), count=1)
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "input_audio.data is not valid base64", code="invalid_base64", param=param) from None
    if not raw:
        raise APIError(400, "input_audio.data is empty", code="invalid_audio", param=param)
    return raw


def decode_audio(
    data: str, fmt: str, *, max_seconds: Optional[float] = None, param: str = "input_audio"
) -> tuple[np.ndarray, int]:
    """base64 audio -> (waveform (T,) mono or (channels, T) float32, sampling rate in Hz).

    400 for bad base64, an unknown format, bytes that are not audio, empty or non-finite audio;
    413 when it lasts more than ``max_seconds``."""
    import soundfile as sf

    if fmt.lower() not in FORMATS:
        raise APIError(
            400,
            f"input_audio.format {fmt!r} is not supported (supported: {', '.join(FORMATS)})",
            code="invalid_audio_format",
            param=f"{param}.format",
        )
    raw = decode_base64(data, f"{param}.data")
    try:
        info = sf.info(io.BytesIO(raw))
        if max_seconds is not None and info.frames > 0 and info.frames / info.samplerate > max_seconds:
            raise APIError(
                413,
                f"the audio lasts {info.frames / info.samplerate:.1f} s, more than the server's limit of "
                f"{max_seconds:g} s",
                code="audio_too_long",
                param=f"{param}.data",
            )
        wave, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = getattr(err, "error_string", None) or str(err)
        raise APIError(
            400, f"input_audio.data is not readable {fmt} audio ({reason})", code="invalid_audio", param=f"{param}.data"
        ) from None
    if wave.shape[0] == 0:
        raise APIError(400, "input_audio.data holds no samples", code="invalid_audio", param=f"{param}.data")
    if not np.isfinite(wave).all():
        raise APIError(400, "the audio holds NaN or infinite samples", code="invalid_audio", param=f"{param}.data")
    if max_seconds is not None and wave.shape[0] / rate > max_seconds:  # a header without a length
        raise APIError(
            413,
            f"the audio lasts {wave.shape[0] / rate:.1f} s, more than the server's limit of {max_seconds:g} s",
            code="audio_too_long",
            param=f"{param}.data",
        )
    wave = np.ascontiguousarray(wave.T)  # (channels, T)
    return (wave[0] if wave.shape[0] == 1 else wave), int(rate)
