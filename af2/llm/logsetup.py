"""Logging set-up of the LLM command-line tools: one format, the key filter, quiet HTTP libs."""

from __future__ import annotations

import logging
import sys


def configure_cli_logging(level: str) -> None:
    """Log to stderr at ``level``; below DEBUG, silence the one-line-per-request INFO logs of the
    HTTP client libraries."""
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for noisy in ("httpx", "httpx2", "openai"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
