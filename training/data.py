"""Stage data: the mixture manifest, resumable batch samplers and the step-indexed stream.

The mixture of ``data.sources`` is written once per stage to ``<output>/mixture.jsonl`` (audio
paths made absolute): each source is filtered by ``long_audio`` and repeated ``weight`` times
(the fractional part is a seeded subset), so the stage's data is one deterministic manifest.

:class:`BatchStream` yields micro-batches across epochs and knows its position
``(epoch, batch)``; restoring that position (``--resume``) skips the planned batches without
loading their audio, so a resumed run sees the same data in the same order.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from af2.data.batching import DynamicBatchSampler
from af2.data.collator import AF2Collator
from af2.data.dataset import AudioQADataset
from af2.data.loader import AudioQALoader
from af2.data.manifest import load_manifest


def write_mixture(sources: Sequence[dict], out: Path, *, seed: int) -> Path:
    """The stage's manifest from ``sources``; written atomically (every rank writes the same)."""
    lines: list[str] = []
    for k, src in enumerate(sources):
        manifest = Path(src["manifest"]).resolve()
        result = load_manifest(manifest)
        if not result.ok:
            raise ValueError(f"data.sources[{k}].manifest {manifest}: " + "; ".join(map(str, result.errors[:5])))
        rows = []
        for raw in manifest.read_text().splitlines():
            if not raw.strip():
                continue
            row = json.loads(raw)
            is_long = bool(row.get("long_audio", False))
            keep = {"any": True, "only": is_long, "exclude": not is_long}[src.get("long_audio", "any")]
            if keep:
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                rows.append(json.dumps(row))
        weight = float(src.get("weight", 1.0))
        whole, frac = int(weight), weight - int(weight)
        extra = random.Random(f"{seed}-{k}").sample(rows, round(frac * len(rows))) if rows else []
        if not rows or not rows * whole + extra:
            raise ValueError(f"data.sources[{k}]: no sample left after long_audio={src.get('long_audio', 'any')}"
                             f" and weight={weight}")
        lines += rows * whole + extra
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


class _Resumable:
    """Mixin: ``skip`` planned batches are dropped (once) at the start of the next iteration."""

    skip = 0

    def __iter__(self):
        batches = list(super().__iter__())
        start, self.skip = self.skip, 0
        yield from batches[start:]


class DynamicResumableSampler(_Resumable, DynamicBatchSampler):
    """af2's dynamic window-budget batches (LLM stages)."""


class FixedBatchSampler(Sampler[list[int]]):
    """Equal-size batches (``batch_size`` per rank, last partial global batch dropped): the
    distributed contrastive loss needs the same B on every rank. Seeded by ``(seed, epoch)``."""

    def __init__(self, n: int, batch_size: int, *, seed: int, num_replicas: int, rank: int):
        if n < batch_size * num_replicas:
            raise ValueError(f"{n} samples cannot fill one global batch of {batch_size} x {num_replicas} ranks")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist()
        step = self.batch_size * self.num_replicas
        for g in range(len(self)):
            start = g * step + self.rank * self.batch_size
            yield order[start:start + self.batch_size]


class FixedResumableSampler(_Resumable, FixedBatchSampler):
    pass


def build_loader(cfg: dict, manifest: Path, tokenizer, *, world: int, rank: int, collator=None) -> AudioQALoader:
    """The stage's loader: dynamic batches with the LLM collator, or (``collator`` given, CLAP)
    fixed-size batches with that collator."""
    data = cfg["data"]
    dataset = AudioQADataset.from_manifest(manifest, max_windows=data["max_windows"])
    if collator is None:
        collator = AF2Collator(tokenizer, max_windows=data["max_windows"], max_length=data["max_length"])
        sampler = DynamicResumableSampler(dataset.window_counts(), max_windows_per_batch=data["max_windows_per_batch"],
                                          max_batch_size=data["max_batch_size"], seed=data["seed"],
                                          num_replicas=world, rank=rank)
    else:
        sampler = FixedResumableSampler(len(dataset), cfg["clap"]["batch_size"], seed=data["seed"],
                                        num_replicas=world, rank=rank)
    if len(sampler) == 0:
        raise ValueError(f"{manifest} gives no batch for rank {rank} of {world}")
    return AudioQALoader(dataset, collator, sampler, num_workers=data["num_workers"], log_report=False)


class BatchStream:
    """Endless micro-batches of one rank; ``position`` = (epoch, batches taken this epoch)."""

    def __init__(self, loader: AudioQALoader, epoch: int = 0, batch: int = 0):
        self.loader, self.epoch, self.batch = loader, epoch, batch
        self._it = None

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def __next__(self) -> dict:
        while True:
            if self._it is None:
                self.loader.set_epoch(self.epoch)
                self.loader.sampler.skip = self.batch
                self._it = iter(self.loader.loader)
            try:
                out = next(self._it)
                self.batch += 1  # planned batches, empty ones (all samples unusable) included
                if out["ids"]:
                    return out
            except StopIteration:
                self._it = None
                self.epoch, self.batch = self.epoch + 1, 0
