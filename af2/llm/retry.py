"""Which failures to retry, and how long to wait before the next try.

Retried: timeouts, connection errors, 408, 409, 429 and 5xx, and a 200 reply that is not a
chat completion. A ``Retry-After`` (or ``retry-after-ms``) header sets the wait, up to
``max_retry_after``; otherwise the wait is exponential backoff with full jitter,
``uniform(0.5, 1) * min(backoff_max, backoff_base * 2**attempt)``. 401 and 403 are fatal for
the whole job (wrong key or model), 404 too (no such endpoint: ``Unreachable``); other 4xx
reject just the one request. A connection that cannot be made (refused, DNS, TLS) is marked
``unreachable``: the client retries it like a timeout but stops the whole job once
``max_unreachable`` consecutive requests failed that way (``LLMClient``).
"""

from __future__ import annotations

import email.utils
import json
import random
import socket
import ssl
import time
from dataclasses import dataclass, field

import openai

from af2.errors import InputError, ServerUnreachable

RETRY_STATUS = frozenset({408, 409, 429})
FATAL_STATUS = frozenset({401, 403, 404})


class LLMError(Exception):
    """A request failed; ``reason`` is a short tag for the report."""

    def __init__(self, message: str, reason: str = "error"):
        super().__init__(message)
        self.reason = reason


class FatalError(LLMError, InputError):
    """No request can succeed (bad key, URL or model): stop the job (exit status 2)."""


class Unreachable(FatalError, ServerUnreachable):
    """The server is not there (no connection, or no such endpoint): stop the job."""


class RequestRejected(LLMError):
    """The server refused this request (a 4xx other than the fatal ones): retrying won't help."""


class RetriesExhausted(LLMError):
    """Still failing after the last retry; the unit stays pending for the next run."""


class BadResponse(Exception):
    """A 200 reply without a usable chat completion (retried like a 5xx)."""


TRANSPORT_ERRORS = (openai.APIError, BadResponse, json.JSONDecodeError)  # what classify() sorts


@dataclass(frozen=True)
class Failure:
    retry: bool
    reason: str
    retry_after: float | None = None
    status: int | None = None
    unreachable: str | None = None  # why no connection could be made (refused, DNS, TLS)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, openai.APITimeoutError):
        return Failure(True, "timeout")
    if isinstance(exc, openai.APIConnectionError):
        why = no_connection(exc)
        return Failure(True, "unreachable" if why else "connection", unreachable=why)
    if isinstance(exc, (BadResponse, openai.APIResponseValidationError, json.JSONDecodeError)):
        return Failure(True, "bad_response")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        reason = f"http_{status}"
        if status in RETRY_STATUS or status >= 500:
            return Failure(True, reason, retry_after(exc.response.headers), status)
        return Failure(False, reason, None, status, "no such endpoint (HTTP 404)" if status == 404 else None)
    raise exc


def no_connection(exc: BaseException) -> str | None:
    """Why a connection could not be made at all ("connection refused", "DNS failure", "TLS
    failure: ..."), or None for a failure after connecting (a reset, a broken reply): read
    from the exceptions the HTTP library chained under ``exc``."""
    chain, seen, connect = exc, set(), False
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, ssl.SSLError):
            return f"TLS failure ({getattr(chain, 'reason', None) or chain})"
        if isinstance(chain, socket.gaierror):
            return "DNS failure (the host name does not resolve)"
        if isinstance(chain, ConnectionRefusedError):
            return "connection refused"
        connect = connect or type(chain).__name__ == "ConnectError"  # httpx's, whatever its package
        chain = chain.__cause__ or chain.__context__
    return "cannot connect" if connect else None


def retry_after(headers) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 600.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, failure: Failure) -> float:
        if failure.retry_after is not None:
            return min(failure.retry_after, self.max_retry_after)
        return self.rng.uniform(0.5, 1.0) * min(self.cap, self.base * 2.0**attempt)
