"""DynamicBatchSampler: window budget, determinism, and exactly-once sharding over 1-3 ranks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from af2.data.batching import DynamicBatchSampler

COUNTS = [int(c) for c in np.random.default_rng(0).choice([1, 1, 1, 2, 3, 5, 9], size=203)]


def _sampler(rank=0, world=1, **kw):
    kw.setdefault("max_windows_per_batch", 12)
    return DynamicBatchSampler(COUNTS, num_replicas=world, rank=rank, **kw)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("epoch", [0, 1])
def test_each_sample_exactly_once_across_ranks(world, epoch):
    seen, lengths = Counter(), []
    for rank in range(world):
        s = _sampler(rank, world, seed=3)
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        lengths.append(len(batches))
        for b in batches:
            seen.update(b)
    assert sorted(seen) == list(range(len(COUNTS))) and set(seen.values()) == {1}
    assert len(set(lengths)) == 1  # every rank takes the same number of steps


@pytest.mark.parametrize("max_batch_size", [None, 4])
def test_every_batch_fits_the_window_budget(max_batch_size):
    for budget in (9, 12, 30):
        for b in _sampler(max_windows_per_batch=budget, max_batch_size=max_batch_size, world=2, rank=1):
            assert len(b) * max(COUNTS[i] for i in b) <= budget
            assert max_batch_size is None or len(b) <= max_batch_size


def test_batches_are_full_where_possible():
    batches = list(_sampler(max_windows_per_batch=12))
    used = sum(len(b) * max(COUNTS[i] for i in b) for b in batches)
    assert used / (12 * len(batches)) > 0.75  # dynamic batching packs the budget
    assert any(len(b) == 12 for b in batches) and any(len(b) == 1 for b in batches)


def test_deterministic_per_epoch_and_seed():
    a, b = _sampler(seed=5), _sampler(seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(_sampler(seed=6)) != list(_sampler(seed=5))
    assert list(_sampler(shuffle=False)) == list(_sampler(shuffle=False, seed=9))


def test_uneven_batch_counts_are_split_not_padded():
    # 7 one-window samples, budget 3: 3 batches (3, 3, 1) -> split to 4 for 2 ranks.
    s = [DynamicBatchSampler([1] * 7, max_windows_per_batch=3, num_replicas=2, rank=r) for r in range(2)]
    parts = [list(x) for x in s]
    assert len(parts[0]) == len(parts[1]) == 2
    assert sorted(i for p in parts for b in p for i in b) == list(range(7))


def test_rejects_impossible_configurations():
    with pytest.raises(ValueError, match="smaller than the longest"):
        DynamicBatchSampler([1, 9], max_windows_per_batch=8)
    with pytest.raises(ValueError, match="cannot be sharded"):
        DynamicBatchSampler([1, 1], max_windows_per_batch=8, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match="rank 3"):
        DynamicBatchSampler([1, 1, 1], max_windows_per_batch=8, num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="cannot give 2 ranks"):
        list(DynamicBatchSampler([3, 3, 3], max_windows_per_batch=3, num_replicas=2, rank=0))
