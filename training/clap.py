"""AF-CLAP contrastive stage data: M paraphrased captions and M x N composition-aware negatives.

The synthetic AudioSkills manifests carry questions and answers, not captions, so a caption is
built from a sample's question (first line, without the choices) and answer with ``M`` fixed
templates (the paraphrases). Each paraphrase gets ``N`` negatives from
:func:`af2.data.negatives.make_negatives` (seeded by the sample id); when the rules offer
fewer, the template is filled with a wrong answer choice, then with a negated answer. All of it
is deterministic. Captions are tokenised by the AF-CLAP text tokenizer: the T5 tokenizer at
``clap.text_path`` when the model has one, else a byte-level one over the text tower's vocab.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import torch

from af2.data.dataset import AudioItem
from af2.data.negatives import make_negatives
from af2.data.report import Skipped
from af2.data.windows import split_windows_batch
from af2.ops import contrastive_loss

TEMPLATES = (
    "a recording in which the answer to '{q}' is {a}",
    "{a}: what you hear when asked '{q}'",
    "audio where, for the question '{q}', the answer is {a}",
    "asked '{q}', a listener would say {a}",
)
NEGATED = "a recording in which the answer to '{q}' is not {a}"


def question(prompt: str) -> str:
    return prompt.strip().splitlines()[0].strip().rstrip("?").strip() if prompt.strip() else ""


def captions(prompt: str, answer: str, choices: Sequence[str] | None, *, m: int, n: int,
             key: str, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """``m`` positive captions and, for each, ``n`` negatives (distinct from every positive)."""
    if m > len(TEMPLATES):
        raise ValueError(f"clap.positives={m} > {len(TEMPLATES)} caption templates")
    q = question(prompt)
    positives = [t.format(q=q, a=answer) for t in TEMPLATES[:m]]
    salt = zlib.crc32(f"{seed}:{key}".encode())
    wrong = [c for c in (choices or []) if c != answer]
    negatives = []
    for t, pos in zip(TEMPLATES, positives):
        found = [neg.text for neg in make_negatives(pos, n, seed=salt).negatives]
        fill = [t.format(q=q, a=c) for c in wrong] + [NEGATED.format(q=q, a=answer)]
        for extra in fill:
            if len(found) >= n:
                break
            if extra not in found and extra not in positives:
                found.append(extra)
        k = 0
        while len(found) < n:  # last resort: numbered negations, still deterministic and distinct
            k += 1
            found.append(f"{NEGATED.format(q=q, a=answer)} ({k})")
        negatives.append(found[:n])
    return positives, negatives


class ByteCaptionTokenizer:
    """Offline caption tokenizer for small text towers: UTF-8 bytes mapped into ``[2, vocab)``,
    0 = pad, 1 = eos."""

    def __init__(self, vocab_size: int):
        if vocab_size < 3:
            raise ValueError(f"text vocab_size {vocab_size} is too small")
        self.vocab = vocab_size

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [[2 + b % (self.vocab - 2) for b in t.encode()][:max_length - 1] + [1] for t in texts]
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return ids, ids != 0


class HFCaptionTokenizer:
    def __init__(self, path: str):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tok(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()


def caption_tokenizer(model_config):
    clap = model_config.clap
    return HFCaptionTokenizer(clap.text_path) if clap.text_path else ByteCaptionTokenizer(clap.text["vocab_size"])


class ClapCollator:
    """Items -> audio_windows (B, W, L), audio_window_mask (B, W), text_ids / text_mask
    (B, M, T), neg_ids / neg_mask (B, M·N, T), ids."""

    def __init__(self, tokenizer, *, max_windows: int, m: int, n: int, max_length: int, seed: int = 0):
        self.tokenizer, self.max_windows, self.m, self.n = tokenizer, max_windows, m, n
        self.max_length, self.seed = max_length, seed

    def __call__(self, items: Sequence[AudioItem | Skipped]) -> dict:
        kept = [it for it in items if not isinstance(it, Skipped)]
        if len(kept) != len(items):
            bad = [it for it in items if isinstance(it, Skipped)]
            raise RuntimeError(f"contrastive batch with unusable samples (equal B per rank needed): {bad}")
        pos, neg = [], []
        for it in kept:
            s = it.sample
            p, ns = captions(s.prompt, s.answer, s.choices, m=self.m, n=self.n, key=s.id, seed=self.seed)
            pos += p
            neg += [x for row in ns for x in row]
        b = len(kept)
        text_ids, text_mask = self.tokenizer(pos, self.max_length)
        out = {"text_ids": text_ids.view(b, self.m, -1), "text_mask": text_mask.view(b, self.m, -1),
               "ids": [it.sample.id for it in kept], "skipped": []}
        if self.n:
            neg_ids, neg_mask = self.tokenizer(neg, self.max_length)
            out.update(neg_ids=neg_ids.view(b, self.m * self.n, -1), neg_mask=neg_mask.view(b, self.m * self.n, -1))
        win = split_windows_batch([it.wave for it in kept], sample_rate=16000, window_seconds=10.0,
                                  max_windows=self.max_windows, names=out["ids"])
        out.update(audio_windows=win.windows, audio_window_mask=win.mask)
        return out


def clap_loss(clap, batch: dict, *, m: int, n: int) -> torch.Tensor:
    """AF-CLAP's distributed contrastive loss on a :class:`ClapCollator` batch."""
    audio = clap.encode_audio(batch["audio_windows"], batch["audio_window_mask"])
    text = clap.encode_text(batch["text_ids"], batch["text_mask"])
    hard = None
    if n:
        hard = clap.encode_text(batch["neg_ids"], batch["neg_mask"]).view(audio.shape[0], m, n, -1)
    return contrastive_loss(audio.float(), text.float(), logit_scale=clap.logit_scale.exp().float(),
                            hard_negatives=None if hard is None else hard.float())
