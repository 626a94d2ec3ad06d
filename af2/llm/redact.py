"""Keeping the API key out of logs, reprs, reports and output files.

``Secret`` wraps the key so that printing a config shows ``***``; ``redact_url`` drops
credentials embedded in a base URL; ``RedactingFilter`` is a logging filter that replaces the
key wherever it would appear in a formatted log record (install it with ``install``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

MASK = "***"


class Secret:
    """A string that never shows itself: ``str``/``repr`` give ``***``; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value or None

    def reveal(self) -> str | None:
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self._value else "Secret(None)"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str | None) -> str | None:
    """``url`` without a ``user:password@`` part and without its query string."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, secret: Secret) -> str:
    value = secret.reveal()
    return text.replace(value, MASK) if value else text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with the secret replaced by ``***``."""

    def __init__(self, secret: Secret):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret:
            message = record.getMessage()
            clean = redact(message, self.secret)
            if clean != message:
                record.msg, record.args = clean, ()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self.secret)
        return True


def install(secret: Secret, logger: logging.Logger | None = None) -> RedactingFilter:
    """Add a ``RedactingFilter`` to every handler of ``logger`` (default: the root logger)."""
    flt = RedactingFilter(secret)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(flt)
    return flt
