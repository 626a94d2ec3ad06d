"""Independent signal analysis used to check the synthetic answers from the audio alone.

Nothing here imports af2.data.synth: events are found by an energy envelope, and
identified from textbook descriptors (spectral flatness, pitch track, harmonic profile,
envelope decay, LPC formants) against the documented definitions of each event.
"""

from __future__ import annotations

import numpy as np

SR = 16000
HOP = 160  # 10 ms


def envelope(x: np.ndarray) -> np.ndarray:
    """Peak |x| in each 10 ms frame."""
    n = len(x) // HOP
    return np.abs(x[: n * HOP]).reshape(n, HOP).max(axis=1)


def segments(x: np.ndarray, *, min_gap: float = 0.2, min_dur: float = 0.005) -> list[tuple[float, float]]:
    """(onset, offset) seconds of sound events: runs of frames above a noise-adaptive
    threshold, merged across gaps shorter than ``min_gap``."""
    env = envelope(x)
    quietest = np.convolve(env, np.ones(10) / 10, "valid").min()  # the quietest 100 ms: background
    thresh = max(3.0 * quietest, 0.05 * env.max())
    on = np.flatnonzero(env > thresh)
    if not len(on):
        return []
    runs, start, prev = [], on[0], on[0]
    for f in on[1:]:
        if (f - prev - 1) * HOP / SR >= min_gap:
            runs.append((start, prev + 1))
            start = f
        prev = f
    runs.append((start, prev + 1))
    return [(a * HOP / SR, b * HOP / SR) for a, b in runs if (b - a) * HOP / SR >= min_dur]


def cut(x: np.ndarray, seg: tuple[float, float]) -> np.ndarray:
    return x[int(seg[0] * SR) : int(seg[1] * SR)]


def spectrum(x: np.ndarray, pad: int = 4) -> tuple[np.ndarray, np.ndarray]:
    n = len(x) * pad
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    return np.fft.rfftfreq(n, 1 / SR), mag


def dominant_freq(x: np.ndarray) -> float:
    f, mag = spectrum(x)
    k = int(np.argmax(mag[1:-1])) + 1
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    return float(f[k] + 0.5 * (a - c) / (a - 2 * b + c) * (f[1] - f[0]))


def pitch_track(x: np.ndarray, win: int = 1024, hop: int = 256) -> np.ndarray:
    """Dominant frequency of each loud frame (>= 10% of the loudest frame's energy)."""
    frames = [x[i : i + win] for i in range(0, len(x) - win + 1, hop)]
    if not frames:
        return np.array([dominant_freq(x)])
    energy = np.array([np.sum(fr**2) for fr in frames])
    return np.array([dominant_freq(fr) for fr, e in zip(frames, energy) if e >= 0.1 * energy.max()])


def flatness(x: np.ndarray) -> float:
    f, mag = spectrum(x, pad=1)
    p = mag[(f > 100) & (f < 7000)] ** 2 + 1e-20
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


def centroid(x: np.ndarray) -> float:
    f, mag = spectrum(x, pad=1)
    return float(np.sum(f * mag**2) / np.sum(mag**2))


def harmonics(x: np.ndarray, f0: float, n: int = 9) -> np.ndarray:
    """Energy in bands of +-f0/4 around k*f0, k = 1..n, relative to the fundamental's."""
    f, mag = spectrum(x)
    p = mag**2
    e = np.array([p[(f > k * f0 - f0 / 4) & (f < k * f0 + f0 / 4)].sum() for k in range(1, n + 1)])
    return e / e[0]


def decays(x: np.ndarray) -> bool:
    third = len(x) // 3
    return np.sqrt(np.mean(x[-third:] ** 2)) < 0.5 * np.sqrt(np.mean(x[:third] ** 2))


def voiced_f0(fr: np.ndarray) -> float | None:
    """Autocorrelation f0 in 70-300 Hz of a frame, or None if unvoiced."""
    fr = fr - np.mean(fr)
    ac = np.correlate(fr, fr, "full")[len(fr) - 1 :]
    lo, hi = SR // 300, SR // 70
    lag = lo + int(np.argmax(ac[lo:hi]))
    return SR / lag if ac[lag] > 0.3 * ac[0] else None


def is_speech(x: np.ndarray, win: int = 640, hop: int = 320) -> bool:
    """Voiced speech: most loud 40-ms frames have an f0 in 70-300 Hz and >= 3 harmonics
    each holding >= 2% of the frame's energy (a pure tone has one)."""
    frames = [x[i : i + win] for i in range(0, len(x) - win + 1, hop)]
    energy = np.array([np.sum(fr**2) for fr in frames]) if frames else np.zeros(0)
    loud = [fr for fr, e in zip(frames, energy) if e >= 0.1 * energy.max()]
    voiced = 0
    for fr in loud:
        f0 = voiced_f0(fr)
        if f0 is not None:
            h = harmonics(fr, f0, n=int(4000 // f0))
            voiced += int(np.sum(h / h.sum() > 0.02) >= 3)
    return bool(loud) and voiced >= 0.3 * len(loud)


def classify(x: np.ndarray) -> str:
    """Name a single event from its signal (definitions in af2.data.synth.events' docs)."""
    dur = len(x) / SR
    if centroid(x) < 400 and dur < 0.25:
        return "thud"
    if dur < 0.04:
        return "click"
    if flatness(x) > 0.3:
        return "noise burst"
    track = pitch_track(x)
    f, mag = spectrum(x)
    if abs(np.median(track) - 2500) < 60:
        return "alarm"
    if _two_peaks(f, mag, 440, 480):
        return "phone ring"
    n = len(track)
    if (
        n >= 6
        and abs(np.median(track[: n // 4]) / 659.26 - 1) < 0.03
        and abs(np.median(track[-n // 3 :]) / 523.25 - 1) < 0.03
    ):
        return "doorbell"
    logf = np.log2(track)
    spread = np.percentile(logf, 95) - np.percentile(logf, 5)
    if spread < 0.05:
        f0 = dominant_freq(x)
        return "beep" if harmonics(x, f0)[1:].sum() < 0.02 else "harmonic"
    if is_speech(x):
        return "speech"
    if spread > 0.5 and len(track) >= 4:
        d = np.diff(logf)
        if np.mean(d > 0) > 0.85:
            return "rising chirp"
        if np.mean(d < 0) > 0.85:
            return "falling chirp"
        if 600 < np.percentile(track, 5) and np.percentile(track, 95) < 1400:
            return "siren"
    return "other"


def _two_peaks(f, mag, fa: float, fb: float) -> bool:
    def peak(fc):
        sel = (f > fc - 10) & (f < fc + 10)
        return mag[sel].max()

    mid = mag[(f > 455) & (f < 465)].max()
    return peak(fa) > 4 * mid and peak(fb) > 4 * mid and min(peak(fa), peak(fb)) > 0.2 * mag.max()


def instrument(x: np.ndarray) -> str:
    """Which of flute/clarinet/violin/piano/organ, from envelope and harmonic profile."""
    f0 = dominant_freq(x)
    h = harmonics(x, f0)
    if decays(x):
        return "piano"
    if h[1] + h[3] + h[5] < 0.01 and h[2] > 0.05:
        return "clarinet"
    if h[1] > 0.25 and h[4] < 0.01 and h[6] < 0.01:
        return "organ"
    if h[1:].sum() < 0.1:
        return "flute"
    if h[4] > 0.01 and h[6] > 0.005:
        return "violin"
    return "unknown"


NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(freq: float) -> str:
    midi = int(round(69 + 12 * np.log2(freq / 440.0)))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def tempo_bpm(onsets: list[float]) -> float:
    k = np.arange(len(onsets))
    period = np.polyfit(k, np.asarray(onsets), 1)[0]
    return 60.0 / period


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def loudness_trend(x: np.ndarray) -> float:
    """Slope of log RMS over 0.25-s frames (per second): > 0 getting louder."""
    n = SR // 4
    levels = [np.log(rms(x[i : i + n]) + 1e-9) for i in range(0, len(x) - n + 1, n)]
    return float(np.polyfit(np.arange(len(levels)) * 0.25, levels, 1)[0])


# Peterson & Barney (1952) average adult male F1, F2 (Hz).
VOWEL_F1F2 = {"ee": (270, 2290), "eh": (530, 1840), "ah": (730, 1090), "oo": (300, 870)}


def formants(x: np.ndarray, order: int = 10) -> list[float]:
    """Formant frequencies by LPC (autocorrelation method) on the 8 kHz-decimated signal."""
    y = x[::2] * np.hamming(len(x[::2]))
    y = np.append(y[0], y[1:] - 0.63 * y[:-1])
    r = np.correlate(y, y, "full")[len(y) - 1 : len(y) + order]
    a = np.linalg.solve(np.array([[r[abs(i - j)] for j in range(order)] for i in range(order)]), r[1 : order + 1])
    roots = np.roots(np.concatenate([[1.0], -a]))
    roots = roots[np.imag(roots) > 0]
    freqs = np.angle(roots) * 8000 / (2 * np.pi)
    bws = -np.log(np.abs(roots)) * 8000 / np.pi
    return sorted(float(fr) for fr, bw in zip(freqs, bws) if fr > 150 and bw < 400)


def vowel(x: np.ndarray) -> str:
    mid = x[len(x) // 3 : 2 * len(x) // 3]
    fs = formants(mid)
    f1, f2 = fs[0], fs[1]
    return min(VOWEL_F1F2, key=lambda v: np.hypot(np.log(f1 / VOWEL_F1F2[v][0]), np.log(f2 / VOWEL_F1F2[v][1])))
