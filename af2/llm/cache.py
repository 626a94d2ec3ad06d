"""On-disk response cache: one SQLite file, one row per distinct request.

The key is a SHA-256 over (model, prompt template name + version + content hash, the rendered
messages, the generation parameters, a sample index). A row is written, and committed, as soon
as a reply arrives, before the caller uses it, so a job killed at any point loses no paid-for
reply; a rerun or a resume replays cached replies without a request. Only successful replies
are cached, never errors. SQLite's journal keeps the file consistent across a kill.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path


def cache_key(*, model: str, template: str, messages: list, params: dict, sample: int = 0) -> str:
    blob = json.dumps(
        {"model": model, "template": template, "messages": messages, "params": params, "sample": sample},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    created: float


class ResponseCache:
    """Thread-safe get/put of ``CachedReply`` by key."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, template TEXT,"
            " text TEXT NOT NULL, finish_reason TEXT, prompt_tokens INTEGER,"
            " completion_tokens INTEGER, created REAL)"
        )
        self._db.commit()

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens, created FROM replies WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else CachedReply(*row)

    def put(self, key: str, reply: CachedReply, *, model: str = "", template: str = "") -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    template,
                    reply.text,
                    reply.finish_reason,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    reply.created,
                ),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
