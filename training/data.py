"""Stage data: the mixture manifest, resumable batch samplers and the step-indexed stream.

The mixture of ``data.sources`` is written once per stage to ``<output>/mixture.jsonl`` (audio
paths made absolute): each source is filtered by ``long_audio`` and repeated ``weight`` times
(the fractional part is a seeded subset), so the stage's data is one deterministic manifest.

:class:`BatchStream` yields micro-batches across epochs and knows its position
``(epoch, batch)``; restoring that position (``--resume``) skips the planned batches without
loading their audio, so a resumed run sees the same data in the same order. A planned batch
that is empty on any rank (all its samples unusable) is skipped by all ranks together, and
the stream keeps a :class:`~af2.data.report.LoadReport` per epoch (what was skipped and
why), logged at every epoch's end and by :meth:`BatchStream.close` at the stage's end.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from af2.data.batching import DynamicBatchSampler
from af2.data.collator import AF2Collator
from af2.data.dataset import AudioQADataset
from af2.data.loader import AudioQALoader
from af2.data.manifest import load_manifest
from af2.data.report import LoadReport, Skipped
from af2.errors import InputError
from af2.jsonl import read_jsonl

log = logging.getLogger("training.data")


def write_mixture(sources: Sequence[dict], out: Path, *, seed: int) -> Path:
    """The stage's manifest from ``sources``; written atomically (every rank writes the same).
    A source manifest that is missing or has a bad line raises ``af2.errors.InputError``
    naming the source and the lines (a stage never trains on a silently shrunken mixture)."""
    lines: list[str] = []
    for k, src in enumerate(sources):
        manifest = Path(src["manifest"]).resolve()
        result = load_manifest(manifest)
        if not result.ok:
            more = f" (and {len(result.errors) - 5} more)" if len(result.errors) > 5 else ""
            raise InputError(f"data.sources[{k}].manifest {manifest}: " + "; ".join(map(str, result.errors[:5])) + more)
        rows = []
        for entry in read_jsonl(manifest, "manifest"):  # the lines load_manifest read (all good here)
            row = entry.value
            is_long = bool(row.get("long_audio", False))
            keep = {"any": True, "only": is_long, "exclude": not is_long}[src.get("long_audio", "any")]
            if keep:
                row["audio"] = str((manifest.parent / row["audio"]).resolve())
                rows.append(row)
        weight = float(src.get("weight", 1.0))
        whole, frac = int(weight), weight - int(weight)
        extra = random.Random(f"{seed}-{k}").sample(rows, round(frac * len(rows))) if rows else []
        if not rows or not rows * whole + extra:
            raise ValueError(
                f"data.sources[{k}]: no sample left after long_audio={src.get('long_audio', 'any')} and weight={weight}"
            )
        lines += rows * whole + extra
    # A sample repeated by a weight > 1 (or a manifest listed twice) keeps its id on its first
    # occurrence and gets "<id>~<k>" on the others: the manifest loader drops duplicate ids.
    seen: dict[str, int] = {}
    for i, row in enumerate(lines):
        sid = row.get("id")
        if sid is not None:
            k = seen[str(sid)] = seen.get(str(sid), 0) + 1
            lines[i] = {**row, "id": f"{sid}~{k - 1}"} if k > 1 else row
        lines[i] = json.dumps(lines[i])
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
            yield order[start : start + self.batch_size]


class FixedResumableSampler(_Resumable, FixedBatchSampler):
    pass


def build_loader(
    cfg: dict, manifest: Path, tokenizer, *, world: int, rank: int, collator=None, window_keys: bool = False
) -> AudioQALoader:
    """The stage's loader: dynamic batches with the LLM collator, or (``collator`` given, CLAP)
    fixed-size batches with that collator. ``window_keys``: the LLM collator also hashes each
    window (for the dense-feature cache; the hashing then runs in the loader's workers)."""
    data = cfg["data"]
    dataset = AudioQADataset.from_manifest(
        manifest,
        max_windows=data["max_windows"],
        skip_truncated_long_audio=data.get("skip_truncated_long_audio", False),
    )
    if collator is None:
        collator = AF2Collator(
            tokenizer, max_windows=data["max_windows"], max_length=data["max_length"], window_keys=window_keys
        )
        sampler = DynamicResumableSampler(
            dataset.window_counts(),
            max_windows_per_batch=data["max_windows_per_batch"],
            max_batch_size=data["max_batch_size"],
            seed=data["seed"],
            num_replicas=world,
            rank=rank,
        )
    else:
        sampler = FixedResumableSampler(
            len(dataset), cfg["clap"]["batch_size"], seed=data["seed"], num_replicas=world, rank=rank
        )
    if len(sampler) == 0:
        raise ValueError(f"{manifest} gives no batch for rank {rank} of {world}")
    return AudioQALoader(dataset, collator, sampler, num_workers=data["num_workers"], log_report=False)


def all_ranks(flag: bool) -> bool:
    """True when ``flag`` is True on every rank (one all-reduce of one number)."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


class BatchStream:
    """Endless micro-batches of one rank; ``position`` = (epoch, planned batches taken this epoch).

    Every rank plans the same number of batches per epoch and the loader yields each of them,
    empty ones (all samples unusable) included. An empty batch is never returned: when the
    planned batch is empty on *any* rank, every rank skips it together (``agree``, by default
    one all-reduce per batch when the sampler has more than one rank), so all ranks take the
    same planned batches in the same step, keep the same position (a checkpoint's position
    resumes every rank) and roll over epochs together. The samples of a batch dropped because
    another rank's was empty are reported as ``peer_empty``.

    ``report`` is the current epoch's :class:`~af2.data.report.LoadReport` (every planned
    batch is added: samples, windows, skips and their reasons). It is logged when the epoch
    rolls over and by :meth:`close` at the end of the stage (a resumed epoch's report covers
    the batches after the resume point); finished reports are kept in ``reports``.
    """

    def __init__(
        self,
        loader: AudioQALoader,
        epoch: int = 0,
        batch: int = 0,
        *,
        agree: Callable[[bool], bool] | None = None,
        logger: logging.Logger = log,
    ):
        self.loader, self.epoch, self.batch = loader, epoch, batch
        ranks = getattr(loader.sampler, "num_replicas", 1)
        self.rank = getattr(loader.sampler, "rank", 0)
        self.agree = agree if agree is not None else (all_ranks if ranks > 1 else (lambda flag: flag))
        self.logger = logger
        self.reports: list[LoadReport] = []
        self.report = self._new_report()
        self._it = None
        self._closed = False

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def _new_report(self) -> LoadReport:
        return LoadReport(
            epoch=self.epoch, complete=False, manifest_errors=[str(e) for e in self.loader.dataset.manifest_errors]
        )

    def _finish_report(self, complete: bool) -> None:
        self.report.complete = complete
        self.reports.append(self.report)
        self.report.log(self.logger, prefix=f"rank {self.rank} ")

    def _dropped(self, batch: dict) -> list[Skipped]:
        samples = self.loader.dataset.samples
        where = batch.get("indices") or [None] * len(batch["ids"])
        return [
            Skipped(
                -1 if i is None else i,
                sid,
                "" if i is None else str(samples[i].audio),
                "peer_empty",
                f"planned batch {self.batch - 1} of epoch {self.epoch} was empty on another rank",
            )
            for i, sid in zip(where, batch["ids"])
        ]

    def __next__(self) -> dict:
        if self._closed:
            raise RuntimeError("BatchStream is closed")
        while True:
            if self._it is None:
                self.loader.set_epoch(self.epoch)
                self.loader.sampler.skip = self._start = self.batch
                self._it = iter(self.loader.loader)
            try:
                out = next(self._it)
            except StopIteration:
                self._it = None
                if self._start == 0 and self.report.batches == 0:  # a whole epoch without one batch
                    raise RuntimeError(
                        f"rank {self.rank}: no usable batch in a whole epoch; {self.report.summary()}"
                    ) from None
                self._finish_report(complete=True)
                self.epoch, self.batch = self.epoch + 1, 0
                self.report = self._new_report()
                continue
            self.batch += 1  # planned batches, skipped ones included: the same on every rank
            if self.agree(bool(out["ids"])):
                self.report.add_batch(out)
                return out
            if out["ids"]:  # fine here, empty on another rank: all ranks skip this planned batch
                self.report.skipped.extend(out["skipped"])
                self.report.skipped.extend(self._dropped(out))
                self.report.empty_batches += 1
            else:
                self.report.add_batch(out)

    def close(self) -> None:
        """End of the stage: log the report of the epoch in progress (if it saw any batch)."""
        if self._closed:
            return
        self._closed = True
        self._it = None
        if self.report.batches or self.report.empty_batches or self.report.skipped:
            self._finish_report(complete=False)
