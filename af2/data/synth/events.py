"""Procedural sound events at 16 kHz, each a float32 numpy array peaking near 1.

Every event has a documented acoustic signature (the tests identify events from the audio
by these, never from the generator's metadata):

=================  =====================================================================
event              signature
=================  =====================================================================
beep               pure sine at ``freq`` (300-3000 Hz), 10 ms ramps
rising chirp       exponential sweep upwards over >= 1 octave
falling chirp      exponential sweep downwards over >= 1 octave
noise burst        white noise (flat spectrum)
click              10 ms decaying noise impulse
flute              harmonics 1, 2, 3 at 1, 0.2, 0.05; slow 60 ms attack; light breath
clarinet           odd harmonics only (1/n up to the 9th)
violin             sawtooth (all harmonics, 1/n, up to the 12th) with 5.5 Hz vibrato
piano              harmonics 1/n^1.5 decaying exponentially; 3 ms attack
organ              harmonics 1, 2, 3, 4, 6, 8 (no 5th/7th), flat sustain
siren              sine whose pitch swings 700-1300 Hz at 0.8 Hz
alarm              2500 Hz sine switched on/off at 4 Hz
doorbell           "ding-dong": E5 (659 Hz) 0.5 s then C5 (523 Hz) 0.8 s, both decaying
phone ring         440 Hz + 480 Hz dual tone, 20 Hz amplitude warble, 1 s bursts
footsteps          low thuds (noise below 300 Hz, 60 ms) at 2 steps per second
drum               kick: sine dropping 150 -> 50 Hz over 120 ms, decaying
=================  =====================================================================
"""

from __future__ import annotations

import numpy as np

SR = 16000
INSTRUMENTS = ("flute", "clarinet", "violin", "piano", "organ")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def note_name(midi: int) -> str:
    """MIDI number to scientific pitch name, e.g. 69 -> 'A4'."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def _t(dur: float) -> np.ndarray:
    return np.arange(int(round(dur * SR))) / SR


def ramp(x: np.ndarray, attack: float = 0.01, release: float = 0.01) -> np.ndarray:
    """Linear fade in/out (seconds)."""
    n = len(x)
    env = np.ones(n)
    a, r = min(n, int(attack * SR)), min(n, int(release * SR))
    if a:
        env[:a] = np.linspace(0, 1, a, endpoint=False)
    if r:
        env[n - r :] = np.minimum(env[n - r :], np.linspace(1, 0, r))
    return x * env


def _norm(x: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(x)) if len(x) else 0.0
    return (x / peak if peak > 0 else x).astype(np.float32)


def beep(freq: float, dur: float) -> np.ndarray:
    return _norm(ramp(np.sin(2 * np.pi * freq * _t(dur))))


def chirp(f0: float, f1: float, dur: float) -> np.ndarray:
    """Exponential sweep from f0 to f1 Hz."""
    t = _t(dur)
    k = np.log(f1 / f0) / dur
    phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    return _norm(ramp(np.sin(phase), 0.02, 0.02))


def noise_burst(dur: float, rng: np.random.Generator) -> np.ndarray:
    return _norm(ramp(rng.standard_normal(len(_t(dur)))))


def click(rng: np.random.Generator) -> np.ndarray:
    n = int(0.010 * SR)
    return _norm(rng.standard_normal(n) * np.exp(-np.arange(n) / (0.0025 * SR)))


def _harmonics(
    freq: float, dur: float, amps: dict[int, float], vibrato: float = 0.0, decay: float | None = None
) -> np.ndarray:
    t = _t(dur)
    inst = freq * (1 + vibrato * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / SR
    out = np.zeros_like(t)
    for n, a in amps.items():
        env = np.exp(-t * np.sqrt(n) / decay) if decay else 1.0
        out += a * env * np.sin(n * phase)
    return out


def instrument(name: str, freq: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic note of one of :data:`INSTRUMENTS` at ``freq`` Hz (keep freq <= 600 Hz)."""
    if name == "flute":
        x = _harmonics(freq, dur, {1: 1.0, 2: 0.2, 3: 0.05}, vibrato=0.003)
        x = x + 0.01 * rng.standard_normal(len(x))
        return _norm(ramp(x, 0.06, 0.05))
    if name == "clarinet":
        return _norm(ramp(_harmonics(freq, dur, {n: 1.0 / n for n in (1, 3, 5, 7, 9)}), 0.03, 0.03))
    if name == "violin":
        return _norm(ramp(_harmonics(freq, dur, {n: 1.0 / n for n in range(1, 13)}, vibrato=0.01), 0.08, 0.06))
    if name == "piano":
        return _norm(ramp(_harmonics(freq, dur, {n: n**-1.5 for n in range(1, 9)}, decay=0.35), 0.003, 0.02))
    if name == "organ":
        amps = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.7, 6: 0.5, 8: 0.4}
        return _norm(ramp(_harmonics(freq, dur, amps), 0.02, 0.03))
    raise ValueError(f"unknown instrument {name!r}; expected one of {INSTRUMENTS}")


def siren(dur: float) -> np.ndarray:
    t = _t(dur)
    inst = 1000 + 300 * np.sin(2 * np.pi * 0.8 * t - np.pi / 2)
    return _norm(ramp(np.sin(2 * np.pi * np.cumsum(inst) / SR), 0.05, 0.05))


def alarm(dur: float) -> np.ndarray:
    t = _t(dur)
    gate = (np.floor(t * 8) % 2 == 0).astype(float)  # on/off at 4 Hz (125 ms each)
    gate = np.convolve(gate, np.ones(40) / 40, mode="same")  # 2.5 ms edges
    return _norm(np.sin(2 * np.pi * 2500 * t) * gate)


def doorbell() -> np.ndarray:
    def bell(freq: float, dur: float) -> np.ndarray:
        t = _t(dur)
        return ramp(
            (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 3 * freq * t)) * np.exp(-t / 0.25), 0.003, 0.02
        )

    return _norm(np.concatenate([bell(659.26, 0.5), bell(523.25, 0.8)]))


def phone_ring(dur: float) -> np.ndarray:
    t = _t(dur)
    x = np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)
    return _norm(ramp(x * (0.6 + 0.4 * np.sin(2 * np.pi * 20 * t))))


def _lowpass_noise(n: int, rng: np.random.Generator, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / SR) > cutoff] = 0
    return np.fft.irfft(spec, n)


def footsteps(steps: int, rng: np.random.Generator, rate: float = 2.0) -> np.ndarray:
    period = int(SR / rate)
    out = np.zeros(period * steps)
    n = int(0.06 * SR)
    for k in range(steps):
        thud = _lowpass_noise(n, rng, 300) * np.exp(-np.arange(n) / (0.015 * SR))
        out[k * period : k * period + n] += thud
    return _norm(out[: period * (steps - 1) + n])


def drum() -> np.ndarray:
    t = _t(0.2)
    inst = 50 + 100 * np.exp(-t / 0.04)
    return _norm(np.sin(2 * np.pi * np.cumsum(inst) / SR) * np.exp(-t / 0.06))


def background(n: int, rng: np.random.Generator, level: float, kind: str = "pink") -> np.ndarray:
    """Stationary noise of RMS ``level``: white, pink (1/f) or brown (1/f^2)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    spec = spec * {"white": 1.0, "pink": f**-0.5, "brown": f**-1.0}[kind]
    x = np.fft.irfft(spec, n)
    rms = np.sqrt(np.mean(x**2)) or 1.0
    return (x * level / rms).astype(np.float32)
