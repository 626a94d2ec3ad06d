"""One JSON line per request on the ``af2.serve.requests`` logger.

Fields: ``id``, ``status`` (the HTTP status; 499 when the client went away first), ``stream``,
``audio_seconds``, ``prompt_tokens``, ``completion_tokens``, ``finish_reason``, ``queue_s``
(submit to prefill), ``ttft_s`` (submit to first token), ``total_s`` (the whole request as the
server saw it: reading and decoding included), and for a refused request its error ``code``.
Nothing from the request's headers is logged (the API key never is), nor its text or audio.
"""

from __future__ import annotations

import json
import logging
from typing import Optional

LOGGER = "af2.serve.requests"
log = logging.getLogger(LOGGER)


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 4)


def log_request(
    request_id: str,
    *,
    status: int,
    stream: bool,
    total_s: float,
    finished=None,
    audio_seconds: Optional[float] = None,
    code: Optional[str] = None,
) -> dict:
    """Write the line (INFO) and return its fields. ``finished``: the engine's
    :class:`~af2.serve.protocol.Finished`, when the request reached the engine."""
    record = {
        "id": request_id,
        "status": int(status),
        "stream": bool(stream),
        "audio_seconds": _seconds(finished.audio_seconds if finished is not None else audio_seconds),
        "prompt_tokens": finished.prompt_tokens if finished is not None else None,
        "completion_tokens": finished.completion_tokens if finished is not None else None,
        "finish_reason": finished.finish_reason if finished is not None else None,
        "queue_s": _seconds(finished.queue_s) if finished is not None else None,
        "ttft_s": _seconds(finished.ttft_s) if finished is not None else None,
        "total_s": _seconds(total_s),
    }
    if code is not None:
        record["code"] = code
    log.info(json.dumps(record))
    return record
