"""Dynamic batching by window count (AF2 paper, Algorithm 2), sharded across ranks.

A batch's cost is ``len(batch) * max(window count in batch)``: the number of 10-s windows
the audio encoder runs after padding. :class:`DynamicBatchSampler` keeps every batch's
cost within ``max_windows_per_batch``:

1. shuffle the indices with a generator seeded by ``(seed, epoch)``;
2. bucket them by window count; cut each bucket into full batches of
   ``budget // w`` samples (capped by ``max_batch_size``);
3. pack the buckets' remainders greedily, longest first, into extra batches under budget;
4. shuffle the batch order (same generator);
5. if the number of batches is not a multiple of ``num_replicas``, split the largest
   batches in two until it is (a split batch costs no more than its parent);
6. rank ``r`` takes batches ``r, r + R, r + 2R, ...``.

Every rank computes the same global list, so with DistributedSampler semantics each
sample is yielded exactly once per epoch across all ranks (no padding duplicates), every
rank gets the same number of batches, and the result depends only on
``(window_counts, seed, epoch)``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


def _pack(indices: list[int], counts: Sequence[int], budget: int, max_size: int) -> list[list[int]]:
    """Greedy packing of ``indices`` sorted by window count (descending) under the budget."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in sorted(indices, key=lambda j: -counts[j]):
        widest = counts[current[0]] if current else counts[i]
        if current and ((len(current) + 1) * widest > budget or len(current) >= max_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def plan_batches(
    counts: Sequence[int],
    *,
    max_windows_per_batch: int,
    max_batch_size: int | None,
    order: Sequence[int],
    rng: np.random.Generator | None,
) -> list[list[int]]:
    """Steps 2-4 above on the given sample ``order``; ``rng`` None keeps batch order."""
    max_size = max_batch_size or len(counts) or 1
    buckets: dict[int, list[int]] = defaultdict(list)
    for i in order:
        buckets[counts[i]].append(int(i))
    batches: list[list[int]] = []
    remainders: list[int] = []
    for w in sorted(buckets):
        cap = max(1, min(max_windows_per_batch // w, max_size))
        idx = buckets[w]
        full = len(idx) // cap * cap
        batches.extend(idx[k : k + cap] for k in range(0, full, cap))
        remainders.extend(idx[full:])
    batches.extend(_pack(remainders, counts, max_windows_per_batch, max_size))
    if rng is not None:
        perm = rng.permutation(len(batches))
        batches = [batches[k] for k in perm]
    return batches


def split_to_multiple(batches: list[list[int]], multiple: int) -> list[list[int]]:
    """Split the largest batches in two (in place of the parent) until ``len % multiple == 0``."""
    batches = list(batches)
    while len(batches) % multiple:
        k = max(range(len(batches)), key=lambda j: len(batches[j]))
        if len(batches[k]) < 2:
            raise ValueError(
                f"cannot give {multiple} ranks the same number of batches: only {sum(map(len, batches))} sample(s)"
            )
        half = len(batches[k]) // 2
        batches[k : k + 1] = [batches[k][:half], batches[k][half:]]
    return batches


class DynamicBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose padded window count fits a budget.

    window_counts: windows of each sample (``dataset.window_counts()``).
    max_windows_per_batch: the budget; must be >= the largest window count.
    num_replicas / rank: default to the torch.distributed world (1 / 0 without one).
    Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(
        self,
        window_counts: Sequence[int],
        *,
        max_windows_per_batch: int,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        counts = [int(c) for c in window_counts]
        if any(c < 1 for c in counts):
            raise ValueError("every window count must be >= 1")
        if counts and max(counts) > max_windows_per_batch:
            raise ValueError(
                f"max_windows_per_batch={max_windows_per_batch} is smaller than the longest "
                f"sample ({max(counts)} windows)"
            )
        if len(counts) < num_replicas:
            raise ValueError(f"{len(counts)} sample(s) cannot be sharded over {num_replicas} ranks")
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.counts = counts
        self.max_windows_per_batch = max_windows_per_batch
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, in order (rank r takes every R-th)."""
        n = len(self.counts)
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        order = rng.permutation(n) if rng is not None else np.arange(n)
        batches = plan_batches(
            self.counts,
            max_windows_per_batch=self.max_windows_per_batch,
            max_batch_size=self.max_batch_size,
            order=order,
            rng=rng,
        )
        return split_to_multiple(batches, self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.global_batches()[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return len(self.global_batches()) // self.num_replicas
