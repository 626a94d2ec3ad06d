"""The trainer's device handling without a GPU: batches and the reduced scalars go to the
engine's device (DeepSpeed's forward does not move inputs, and NCCL takes CUDA tensors only)."""

from __future__ import annotations

import pytest
import torch

from training import train
from training.config import SCHEMA, merge


class _FakeEngine:
    """What _train_step uses of a DeepSpeed engine; ``device`` is "meta" to see where tensors go."""

    device = torch.device("meta")
    skipped_steps = 0

    def __init__(self):
        self.seen = []

    def __call__(self, batch):
        self.seen.append({k: v.device for k, v in batch.items() if torch.is_tensor(v)})
        return torch.tensor(1.0)

    def zero_optimization_stage(self):
        return 2

    def bfloat16_enabled(self):
        return False

    def fp16_enabled(self):
        return False

    def backward(self, loss):
        pass

    def step(self):
        pass


def test_batches_move_to_the_engine_device():
    cfg = merge(SCHEMA, {"train": {"grad_accum": 2}})
    batches = iter(
        [
            {"ids": ["a", "b"], "input_ids": torch.zeros(2, 3, dtype=torch.long), "audio_windows": torch.zeros(2, 1, 8)}
            for _ in range(2)
        ]
    )
    engine = _FakeEngine()
    losses, samples, skipped = train._train_step(engine, batches, cfg, 1)
    assert losses == [1.0, 1.0] and samples == 4 and not skipped
    assert engine.seen and all(dev == torch.device("meta") for seen in engine.seen for dev in seen.values())


class _Stop(Exception):
    pass


def test_all_reduce_uses_the_given_device(monkeypatch):
    seen = []

    def all_reduce(t, op=None):
        seen.append((t.device, t.dtype))
        raise _Stop  # a meta tensor has no values to read back

    monkeypatch.setattr(train.dist, "all_reduce", all_reduce)
    with pytest.raises(_Stop):
        train._all_reduce([1.0, 2.0], torch.device("meta"))
    assert seen == [(torch.device("meta"), torch.float64)]
