"""The training data loader: manifest -> dataset -> dynamic batches -> model inputs.

:func:`make_loader` wires :class:`~af2.data.dataset.AudioQADataset`,
:class:`~af2.data.batching.DynamicBatchSampler` and :class:`~af2.data.collator.AF2Collator`
into a ``torch.utils.data.DataLoader`` wrapped by :class:`AudioQALoader`, which keeps a
:class:`~af2.data.report.LoadReport` of what was skipped (across worker processes) and logs
it at the end of every epoch (and when an epoch is stopped early).

Every planned batch is yielded, **empty ones included**: a batch whose samples were all
unusable has ``B = 0`` (``batch["ids"] == []``, zero-size tensors, the reasons in
``batch["skipped"]``). So every rank gets exactly ``len(loader)`` batches per epoch, the same
number on every rank, and a distributed loop stays in step; the consumer decides what to do
with an empty batch (e.g. ``training.data.BatchStream`` skips it on all ranks together).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from torch.utils.data import DataLoader

from af2.data.batching import DynamicBatchSampler
from af2.data.collator import AF2Collator
from af2.data.dataset import AudioQADataset
from af2.data.report import LoadReport

log = logging.getLogger("af2.data")


class AudioQALoader:
    """Iterate batches of one rank's shard (empty ones included); ``report`` is the last
    epoch's report (finished or stopped early)."""

    def __init__(
        self,
        dataset: AudioQADataset,
        collator: AF2Collator,
        sampler: DynamicBatchSampler,
        *,
        num_workers: int = 2,
        pin_memory: bool = False,
        log_report: bool = True,
    ):
        self.dataset = dataset
        self.collator = collator
        self.sampler = sampler
        self.log_report = log_report
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )
        self.reports: list[LoadReport] = []

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def report(self) -> LoadReport | None:
        return self.reports[-1] if self.reports else None

    def __len__(self) -> int:
        """Batches this rank yields this epoch: the same on every rank, empty ones included."""
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict]:
        report = LoadReport(
            epoch=self.sampler.epoch, manifest_errors=[str(e) for e in self.dataset.manifest_errors], complete=False
        )
        try:
            for batch in self.loader:
                report.add_batch(batch)
                yield batch
            report.complete = True
        finally:  # also when the consumer stops early (break, exception, close())
            self.reports.append(report)
            if self.log_report:
                report.log(log)


def make_loader(
    manifest: str | Path,
    tokenizer,
    *,
    max_windows: int = 3,
    max_windows_per_batch: int | None = None,
    max_batch_size: int | None = None,
    num_workers: int = 2,
    seed: int = 0,
    shuffle: bool = True,
    num_replicas: int | None = None,
    rank: int | None = None,
    max_length: int | None = None,
    peak_normalize: bool = False,
    supervise_end_tokens: bool = True,
    skip_truncated_long_audio: bool = False,
) -> AudioQALoader:
    """A loader over a JSONL manifest; ``max_windows_per_batch`` defaults to ``8 * max_windows``.
    ``skip_truncated_long_audio``: see :class:`~af2.data.dataset.AudioQADataset`."""
    dataset = AudioQADataset.from_manifest(
        manifest,
        max_windows=max_windows,
        peak_normalize=peak_normalize,
        skip_truncated_long_audio=skip_truncated_long_audio,
    )
    sampler = DynamicBatchSampler(
        dataset.window_counts(),
        max_windows_per_batch=max_windows_per_batch or 8 * max_windows,
        max_batch_size=max_batch_size,
        shuffle=shuffle,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
    )
    collator = AF2Collator(
        tokenizer, max_windows=max_windows, max_length=max_length, supervise_end_tokens=supervise_end_tokens
    )
    return AudioQALoader(dataset, collator, sampler, num_workers=num_workers)
