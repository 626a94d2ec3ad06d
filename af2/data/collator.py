"""Batches of model inputs from :class:`~af2.data.dataset.AudioItem` records.

For each sample the text is ``<audio>{prompt}<SEP>{answer}<|endofchunk|>{eos}``, tokenised
piece by piece so the answer's span is exact (:class:`af2.text.sample.SampleEncoder`). A sample
with ``choices`` whose prompt does not list them gets them appended ("Choose one:" and one
``(A) option`` line each, as the synthetic set writes them: :func:`af2.text.prompts.with_choices`).
Output of ``collator(items)``:

=====================  ===============  ===============================================
key                    shape / type     meaning
=====================  ===============  ===============================================
input_ids              (B, S) int64     right-padded with the pad id
attention_mask         (B, S) bool      True on real tokens
labels                 (B, S) int64     token ids on the answer (and, by default, on
                                        ``<|endofchunk|>`` and eos, as the public AF2
                                        code trains), -100 everywhere else
media_locations        (B, S) bool      True at the ``<audio>`` token
audio_windows          (B, W, L) f32    10-s windows, zero-padded (L = 160000)
audio_window_mask      (B, W) bool      True on windows holding real audio
num_windows            (B,) int64       real windows per sample
truncated              (B,) bool        the sample's audio was longer than max_windows
audio_window_keys      (B, W, 16) uint8 content keys of the windows (``window_keys=True``
                                        only; :func:`af2.audio.windows.window_keys`)
ids, indices, skills,  lists (B)        per-sample manifest fields (``prompts`` as the
prompts, answers                        model sees them, choices included)
skipped                list             :class:`Skipped` records of this batch
=====================  ===============  ===============================================

``W`` is the batch's largest window count (``trim_windows=True``) or ``max_windows``.
Unusable samples (bad audio, or longer than ``max_length`` tokens) are dropped from the
batch and listed in ``skipped``; a batch may therefore have ``B = 0``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from af2.audio.windows import split_windows_batch, window_keys, window_length
from af2.data.dataset import AudioItem
from af2.data.manifest import Sample
from af2.data.report import Skipped
from af2.text.prompts import with_choices
from af2.text.sample import IGNORE_INDEX, SampleEncoder


class AF2Collator(SampleEncoder):
    """Tokenise, mask labels to the answer, and window the audio of a list of items.
    ``window_keys``: also hash each window's content (``audio_window_keys``; training's feature
    cache looks its features up by them)."""

    def __init__(
        self,
        tokenizer,
        *,
        max_windows: int,
        sample_rate: int = 16000,
        window_seconds: float = 10.0,
        max_length: int | None = None,
        supervise_end_tokens: bool = True,
        trim_windows: bool = True,
        window_keys: bool = False,
    ):
        super().__init__(tokenizer, supervise_end_tokens=supervise_end_tokens)
        self.max_windows = max_windows
        self.sample_rate = sample_rate
        self.window_seconds = window_seconds
        self.max_length = max_length
        self.trim_windows = trim_windows
        self.window_keys = window_keys

    @staticmethod
    def prompt(sample: Sample) -> str:
        """The prompt the model sees: the manifest's, with its ``choices`` listed."""
        return with_choices(sample.prompt, sample.choices)

    def __call__(self, items: Sequence[AudioItem | Skipped]) -> dict:
        skipped = [it for it in items if isinstance(it, Skipped)]
        kept, texts = [], []
        for it in items:
            if isinstance(it, Skipped):
                continue
            ids, labels = self.encode(self.prompt(it.sample), it.sample.answer)
            if self.max_length is not None and len(ids) > self.max_length:
                skipped.append(
                    Skipped(
                        it.index,
                        it.sample.id,
                        str(it.sample.audio),
                        "too_long",
                        f"{len(ids)} tokens > max_length {self.max_length}",
                    )
                )
                continue
            kept.append(it)
            texts.append((ids, labels))
        return self._assemble(kept, texts, skipped)

    def _assemble(self, kept: list[AudioItem], texts: list, skipped: list[Skipped]) -> dict:
        b = len(kept)
        s = max((len(ids) for ids, _ in texts), default=0)
        input_ids = torch.full((b, s), self.pad_id, dtype=torch.int64)
        labels = torch.full((b, s), IGNORE_INDEX, dtype=torch.int64)
        attention = torch.zeros((b, s), dtype=torch.bool)
        for row, (ids, lab) in enumerate(texts):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(lab)] = torch.tensor(lab)
            attention[row, : len(ids)] = True
        if kept:
            batched = split_windows_batch(
                [it.wave for it in kept],
                sample_rate=self.sample_rate,
                window_seconds=self.window_seconds,
                max_windows=self.max_windows,
                trim=self.trim_windows,
                names=[it.sample.id for it in kept],
            )
            windows, mask, num = batched.windows, batched.mask, batched.num_windows
            truncated = batched.truncated | torch.tensor([it.truncated for it in kept])
        else:
            length = window_length(self.sample_rate, self.window_seconds)
            windows, mask = torch.zeros((0, 0, length)), torch.zeros((0, 0), dtype=torch.bool)
            num, truncated = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "media_locations": input_ids == self.audio_id,
            "audio_windows": windows,
            "audio_window_mask": mask,
            "num_windows": num,
            "truncated": truncated,
            "ids": [it.sample.id for it in kept],
            "indices": [it.index for it in kept],
            "skills": [it.sample.skill for it in kept],
            "prompts": [self.prompt(it.sample) for it in kept],
            "answers": [it.sample.answer for it in kept],
            "skipped": skipped,
        }
        if self.window_keys:
            batch["audio_window_keys"] = window_keys(windows, mask)
        return batch
