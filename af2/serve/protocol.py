"""What the decoding engine and its callers (``af2 infer``, the HTTP server) exchange.

A caller builds a :class:`GenerationRequest` (one prompt, at most one audio, its
:class:`SamplingParams`) and hands it to ``Engine.submit``; the engine answers with a stream of
events: zero or more :class:`TokenDelta` (new text, in order) and exactly one :class:`Finished`
last. A request the engine cannot take is refused at ``submit`` with a :class:`RequestRejected`
(the HTTP status it maps to is on the exception), never by a later event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """max_new_tokens >= 1; temperature 0 is greedy (the same tokens as ``model.generate``
    without sampling), > 0 samples with ``top_p`` in (0, 1]; ``seed`` makes one request's
    sampling reproducible whatever else runs beside it; ``stop``: strings that end the answer
    (not included in it)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: Optional[int] = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if int(self.max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class GenerationRequest:
    """prompt: the user's text (the engine applies the processor's prompt format); audio: a
    waveform (T,) or (channels, T) float32 at ``sampling_rate`` Hz, or None for a text-only prompt."""

    request_id: str
    prompt: str
    audio: Optional[np.ndarray] = None
    sampling_rate: int = 16000
    params: SamplingParams = field(default_factory=SamplingParams)

    @property
    def audio_seconds(self) -> float:
        return 0.0 if self.audio is None else float(self.audio.shape[-1]) / float(self.sampling_rate)


@dataclass(frozen=True)
class TokenDelta:
    """New answer text since the previous delta (never text past a stop string) and its token ids."""

    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Finished:
    """The last event of every request. finish_reason: "stop" (end token or a stop string),
    "length" (max_new_tokens), "cancelled" (the caller cancelled or the engine shut down before
    it finished), "error" (``error`` says what). ``text`` is the whole answer. Times in seconds
    from ``submit``: queue_s until its prefill began, ttft_s until its first token, total_s."""

    finish_reason: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    audio_seconds: float
    queue_s: float
    ttft_s: Optional[float]
    total_s: float
    error: Optional[str] = None


Event = Union[TokenDelta, Finished]


class RequestRejected(Exception):
    """A request refused at submit. ``status``: the HTTP status it maps to (400 bad request,
    413 audio too long, 429 queue full, 503 not accepting: loading or shutting down); ``code``:
    a short machine-readable reason (OpenAI's error ``code``); ``param``: the offending field."""

    def __init__(self, message: str, *, status: int, code: str, param: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.status = int(status)
        self.code = code
        self.param = param
