"""Request and token rate limits (per minute), shared by all threads of a client.

Two leaky buckets, one for requests and one for tokens. A bucket refills at ``limit / 60`` per
second up to one second's worth (at least one request, so limits pace evenly instead of
bursting a minute's quota at once). A call may take more than the bucket holds: it waits until
the bucket is full enough for it (or full), then drives the level negative, and later callers
wait for the debt to refill. Token use is estimated before a request and corrected with the
server's count afterwards (``settle``).
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class _Bucket:
    def __init__(self, per_minute: float, now: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, cost: float) -> float:
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """``acquire(tokens)`` blocks until one more request of about ``tokens`` tokens is allowed."""

    def __init__(
        self,
        rpm: float = 0.0,
        tpm: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.clock, self.sleep = clock, sleep
        now = clock()
        self._requests = _Bucket(rpm, now) if rpm > 0 else None
        self._tokens = _Bucket(tpm, now) if tpm > 0 else None
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, tokens: float = 0.0) -> None:
        while True:
            with self._lock:
                now = self.clock()
                wait = 0.0
                for bucket, cost in ((self._requests, 1.0), (self._tokens, tokens)):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(cost))
                if wait <= 0.0:
                    for bucket, cost in ((self._requests, 1.0), (self._tokens, tokens)):
                        if bucket is not None:
                            bucket.level -= cost
                    return
                self.waited += wait
            self.sleep(wait)

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the token bucket once the server has said how many tokens a call used."""
        if self._tokens is not None:
            with self._lock:
                self._tokens.level += estimated - actual
