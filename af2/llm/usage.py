"""Token, request and cost accounting for one run, printed and saved at the end of a job.

``requests`` counts HTTP attempts (what the server saw, retries included); ``replies`` the
successful ones; ``cache_hits`` the calls answered from the cache, whose tokens are counted
apart as ``saved_*`` because they cost nothing this time.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Usage:
    price_in: float = 0.0  # USD per million prompt tokens
    price_out: float = 0.0  # USD per million completion tokens
    requests: int = 0
    replies: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    rate_limit_wait_s: float = 0.0
    retries: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)  # repairs, rejections, failures by reason
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def count(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    @property
    def cost_usd(self) -> float:
        return (self.prompt_tokens * self.price_in + self.completion_tokens * self.price_out) / 1e6

    @property
    def saved_usd(self) -> float:
        return (self.saved_prompt_tokens * self.price_in + self.saved_completion_tokens * self.price_out) / 1e6

    def to_dict(self) -> dict:
        with self._lock:
            out = {k: v for k, v in vars(self).items() if not k.startswith("_")}
            out["retries"], out["events"] = dict(self.retries), dict(self.events)
        out["cost_usd"], out["saved_usd"] = round(self.cost_usd, 6), round(self.saved_usd, 6)
        return out

    def summary(self) -> str:
        d = self.to_dict()
        lines = [
            f"requests sent {d['requests']} (replies {d['replies']}, retries "
            f"{sum(d['retries'].values())} {d['retries'] or ''}), cache hits {d['cache_hits']}",
            f"tokens: prompt {d['prompt_tokens']}, completion {d['completion_tokens']}; "
            f"from cache: prompt {d['saved_prompt_tokens']}, completion {d['saved_completion_tokens']}",
            f"cost ${d['cost_usd']:.4f} (saved by the cache ${d['saved_usd']:.4f}; prices "
            f"${self.price_in}/M in, ${self.price_out}/M out)",
        ]
        if d["events"]:
            lines.append("events: " + ", ".join(f"{k} {v}" for k, v in sorted(d["events"].items())))
        if d["rate_limit_wait_s"]:
            lines.append(f"waited {d['rate_limit_wait_s']:.1f} s for rate limits")
        return "\n".join(lines)
