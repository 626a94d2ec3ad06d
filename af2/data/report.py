"""What the loader skipped and why, per epoch.

The dataset never raises on a bad sample: it returns a :class:`Skipped` record that the
collator passes along in ``batch["skipped"]``; the loader adds every batch to a
:class:`LoadReport` (in the main process, so workers' findings are not lost) and logs its
summary at the end of each epoch, also when the epoch was stopped early (``complete`` False).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("af2.data")


@dataclass(frozen=True)
class Skipped:
    """A sample that could not be used: dataset ``index``, ``id``, audio ``path``,
    a stable ``kind`` (e.g. ``missing``, ``corrupt``, ``too_long``) and the ``reason``."""

    index: int
    id: str
    path: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.id} ({self.path}): {self.reason}"


@dataclass
class LoadReport:
    """Counts of one epoch: samples and windows delivered, truncations, skips by kind.

    ``batches`` counts the batches delivered, ``empty_batches`` the planned ones that were not
    (all samples skipped; in training also a batch dropped because it was empty on another
    rank); ``complete`` is False for an epoch stopped before its last batch.
    """

    epoch: int = 0
    samples: int = 0
    windows: int = 0
    batches: int = 0
    empty_batches: int = 0
    truncated: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    manifest_errors: list[str] = field(default_factory=list)
    complete: bool = True

    @property
    def counts(self) -> Counter:
        """Skips per kind, e.g. ``Counter({'missing': 2, 'corrupt': 1})``."""
        return Counter(s.kind for s in self.skipped)

    def add_batch(self, batch: dict) -> None:
        """Count a collated batch (``ids`` and ``skipped``; windows from ``num_windows`` or
        ``audio_window_mask``, truncations from ``truncated`` where the collator gives them)."""
        self.skipped.extend(batch.get("skipped", ()))
        n = len(batch["ids"])
        if not n:
            self.empty_batches += 1
            return
        self.batches += 1
        self.samples += n
        if "num_windows" in batch:
            self.windows += int(batch["num_windows"].sum())
        elif "audio_window_mask" in batch:
            self.windows += int(batch["audio_window_mask"].sum())
        if "truncated" in batch:
            self.truncated.extend(i for i, t in zip(batch["ids"], batch["truncated"].tolist()) if t)

    def summary(self, max_lines: int = 20) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "none"
        stopped = "" if self.complete else " (stopped early)"
        empty = f" (+{self.empty_batches} empty)" if self.empty_batches else ""
        lines = [
            f"epoch {self.epoch}{stopped}: {self.samples} samples, {self.windows} windows in {self.batches} "
            f"batches{empty}; skipped {len(self.skipped)} ({counts}); truncated {len(self.truncated)}; "
            f"bad manifest lines {len(self.manifest_errors)}"
        ]
        details = [str(s) for s in self.skipped] + [f"[manifest] {e}" for e in self.manifest_errors]
        lines += [f"  {d}" for d in details[:max_lines]]
        if len(details) > max_lines:
            lines.append(f"  ... and {len(details) - max_lines} more")
        return "\n".join(lines)

    def log(self, logger: logging.Logger = log, prefix: str = "") -> None:
        """The summary at WARNING level when something was skipped, else INFO."""
        level = logging.WARNING if self.skipped or self.manifest_errors else logging.INFO
        logger.log(level, "%sdata report, %s", prefix, self.summary())
