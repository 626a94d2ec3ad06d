"""read_audio: round trips across formats, rates and channels, seeking, and every bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from af2.audio import io as A
from tests.data.audio_files import tone, truncate, write


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_round_trip_formats(tmp_path, ext):
    x = tone(2.0, 16000, 440.0)
    y = A.read_audio(write(tmp_path / f"t.{ext}", x)).numpy()
    assert y.dtype == np.float32 and y.ndim == 1
    if ext in ("wav", "flac"):  # lossless: equal to 16-bit precision
        assert len(y) == len(x) and np.abs(y - x).max() < 1e-4
    else:  # lossy codecs add a small delay/padding; the waveform is still the tone
        assert abs(len(y) - len(x)) < 0.1 * 16000
        lag = int(np.argmax(np.correlate(y[:4000], x[:2000], "valid")))
        assert _corr(y[lag:], x) > 0.95


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampled_to_16k_keeps_pitch_and_length(tmp_path, sr):
    y = A.read_audio(write(tmp_path / "t.wav", tone(1.5, sr, 1000.0), sr)).numpy()
    assert abs(len(y) - 24000) <= 2
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.fft.rfftfreq(len(y), 1 / 16000)[np.argmax(spec)] - 1000.0) < 2.0


def test_multichannel_is_mixed_down_by_mean(tmp_path):
    x = tone(1.0, 16000, 300.0, channels=6)
    y = A.read_audio(write(tmp_path / "six.wav", x, subtype="FLOAT")).numpy()
    assert np.allclose(y, x.mean(axis=1), atol=1e-6)


def test_seek_reads_exactly_the_span(tmp_path):
    sr = 44100
    ramp = np.linspace(-1, 1, 10 * sr, dtype=np.float32)  # the value encodes the position
    path = write(tmp_path / "ramp.wav", ramp, sr, subtype="FLOAT")
    y = A.read_audio(path, start=2.0, end=5.0, target_sr=sr).numpy()
    assert len(y) == 3 * sr and y[0] == pytest.approx(ramp[2 * sr]) and y[-1] == pytest.approx(ramp[5 * sr - 1])
    tail = A.read_audio(path, start=9.5, target_sr=sr).numpy()
    assert len(tail) == sr // 2 and tail[-1] == pytest.approx(ramp[-1])


def _expect(exc, kind: str, path, **kw):
    with pytest.raises(exc) as info:
        A.read_audio(path, **kw)
    assert info.value.kind == kind and info.value.path == path
    return info.value.reason


def test_missing_file_and_directory(tmp_path):
    assert "not found" in _expect(A.AudioMissingError, "missing", tmp_path / "nope.wav")
    assert "not a regular file" in _expect(A.AudioMissingError, "missing", tmp_path)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_truncated_files(tmp_path, ext):
    whole = write(tmp_path / f"whole.{ext}", tone(3.0))
    cut = truncate(whole, tmp_path / f"cut.{ext}", 0.5)
    reason = _expect(A.AudioCorruptError, "corrupt", cut)
    assert any(w in reason for w in ("truncated", "malformed", "decoding failed", "cannot open")), reason


def test_corrupt_file_garbage_and_damaged_flac(tmp_path):
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not recognised" in _expect(A.AudioFormatError, "unsupported_format", garbage)
    flac = write(tmp_path / "x.flac", tone(3.0))
    raw = bytearray(flac.read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 2000] = bytes(2000)
    flac.write_bytes(bytes(raw))
    assert "decoding failed" in _expect(A.AudioCorruptError, "corrupt", flac)


def test_zero_length(tmp_path):
    assert "zero audio frames" in _expect(
        A.AudioEmptyError, "empty", write(tmp_path / "e.wav", np.zeros(0, np.float32))
    )


@pytest.mark.parametrize("name", ["song.m4a", "notes.txt", "noext"])
def test_unsupported_format(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + os.urandom(2000))
    assert "format not recognised" in _expect(A.AudioFormatError, "unsupported_format", path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone(2.0)
    x[20000] = bad
    path = write(tmp_path / "nan.wav", x, subtype="FLOAT")
    assert "1 NaN/inf sample(s)" in _expect(A.AudioNonFiniteError, "non_finite", path)
    assert "first at 1.250 s" in _expect(A.AudioNonFiniteError, "non_finite", path)
    assert A.read_audio(path, start=1.5).isfinite().all()  # a clean span of the same file reads fine


def test_too_many_channels(tmp_path):
    path = write(tmp_path / "many.wav", np.zeros((1600, 64), np.float32))
    assert "64 channels" in _expect(A.AudioChannelsError, "too_many_channels", path)
    assert A.read_audio(path, max_channels=64).shape == (1600,)


@pytest.mark.parametrize("sr", [1, 1000, 2_000_000])
def test_absurd_sample_rates(tmp_path, sr):
    path = tmp_path / "sr.wav"
    sf.write(str(path), np.zeros(4000, np.float32), sr)
    assert f"sample rate {sr} Hz" in _expect(A.AudioSampleRateError, "bad_sample_rate", path)


def test_bad_ranges(tmp_path):
    path = write(tmp_path / "t.wav", tone(2.0))
    assert "outside the file" in _expect(A.AudioRangeError, "bad_range", path, start=2.5)
    assert "past the end" in _expect(A.AudioRangeError, "bad_range", path, start=0.5, end=9.0)
    assert "greater than start" in _expect(A.AudioRangeError, "bad_range", path, start=1.0, end=1.0)


def test_error_message_names_path_and_reason(tmp_path):
    err = A.AudioMissingError(tmp_path / "a.wav", "file not found")
    assert str(err) == f"{tmp_path / 'a.wav'}: file not found" and isinstance(err, A.AudioError)
