"""Speech for the synthetic data: espeak-ng when installed, formant synthesis otherwise.

:func:`speech_engine` looks for the ``espeak-ng`` program at run time (Debian package
``espeak-ng``). Without it, :class:`FormantSpeech` makes consonant-vowel syllables
("ba", "dee", ...) from a glottal pulse train through three formant resonators; the
generator records which engine was used in every speech sample (``speech_engine``) and
in ``metadata.json``, and logs a warning when it falls back.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import zlib
from functools import lru_cache

import numpy as np
import soundfile as sf
import soxr

from af2.data.synth.events import SR, _norm, ramp

log = logging.getLogger(__name__)

WORDS = ("hello", "help", "fire", "stop", "water", "doctor", "yes", "thanks")
# Peterson & Barney (1952) average adult male formants F1, F2, F3 (Hz).
VOWELS = {"ee": (270, 2290, 3010), "eh": (530, 1840, 2480), "ah": (730, 1090, 2440), "oo": (300, 870, 2240)}
_BANDWIDTHS = (60.0, 90.0, 120.0)
FALLBACK_NOTE = (
    "espeak-ng was not found: speech in this set is formant-synthesised syllables, "
    "not real words (install the Debian package espeak-ng for real words)"
)


def find_espeak() -> str | None:
    """Path of a working ``espeak-ng`` executable, or None."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        subprocess.run([exe, "--version"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return exe


def _trim(x: np.ndarray, rel: float = 0.02) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > rel * np.max(np.abs(x)))
    return x[idx[0] : idx[-1] + 1] if len(idx) else x


class EspeakSpeech:
    """Real words from espeak-ng (voice en-us, 140 words per minute), 16 kHz."""

    uses_words = True

    def __init__(self, exe: str):
        self.exe = exe
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
        version = out.split("text-to-speech:")[-1].split()[0] if "text-to-speech:" in out else "unknown"
        self.name = f"espeak-ng {version}"

    @lru_cache(maxsize=256)  # noqa: B019  (one engine per process: the cache lives as long as it)
    def say(self, word: str) -> np.ndarray:
        wav = subprocess.run(
            [self.exe, "-v", "en-us", "-s", "140", "--stdout", word], capture_output=True, check=True, timeout=30
        ).stdout
        x, sr = sf.read(io.BytesIO(wav), dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        x = soxr.resample(x, sr, SR) if sr != SR else x
        return _norm(ramp(_trim(x), 0.005, 0.005))

    def vocabulary(self) -> tuple[str, ...]:
        return WORDS


class FormantSpeech:
    """Formant-synthesised consonant-vowel syllables (the fallback), 16 kHz."""

    name = "formant-fallback"
    uses_words = False

    def say(self, token: str, f0: float = 120.0, dur: float = 0.3) -> np.ndarray:
        """A syllable ``token`` = consonant letter + vowel key, e.g. ``"bee"`` or ``"dah"``."""
        vowel = token[1:]
        formants = VOWELS[vowel]
        n = int(dur * SR)
        t = np.arange(n) / SR
        contour = f0 * (1.05 - 0.1 * t / dur)  # falling intonation
        phase = np.cumsum(contour) / SR
        source = np.diff(np.floor(phase), prepend=0.0)  # one impulse per glottal cycle
        spec = np.fft.rfft(source)
        z = np.exp(-2j * np.pi * np.fft.rfftfreq(n, 1 / SR) / SR)
        for f, bw in zip(formants, _BANDWIDTHS):
            r, theta = np.exp(-np.pi * bw / SR), 2 * np.pi * f / SR
            spec /= 1 - 2 * r * np.cos(theta) * z + r * r * z * z
        vowel_wave = ramp(np.fft.irfft(spec, n), 0.03, 0.05)
        burst = np.random.default_rng(zlib.crc32(token.encode())).standard_normal(int(0.012 * SR)) * 0.1
        return _norm(np.concatenate([burst * np.max(np.abs(vowel_wave)), np.zeros(int(0.02 * SR)), vowel_wave]))

    def vocabulary(self) -> tuple[str, ...]:
        return tuple(c + v for c in "bdg" for v in VOWELS)


def speech_engine(prefer: str = "auto"):
    """``"auto"``: espeak-ng if installed, else formant fallback (with a warning);
    ``"espeak"``: espeak-ng or RuntimeError; ``"formant"``: always the fallback."""
    if prefer not in ("auto", "espeak", "formant"):
        raise ValueError(f"speech must be 'auto', 'espeak' or 'formant', got {prefer!r}")
    if prefer != "formant":
        exe = find_espeak()
        if exe is not None:
            return EspeakSpeech(exe)
        if prefer == "espeak":
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        log.warning(FALLBACK_NOTE)
    return FormantSpeech()
