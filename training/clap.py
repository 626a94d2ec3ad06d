"""AF-CLAP contrastive stage data: M positive captions and M x N composition-aware negatives.

Per manifest line (``Sample``; unknown keys are in ``Sample.extra``):

* **positives**: the line's ``paraphrases`` (``python -m af2.data.llm paraphrase`` output), the
  first M distinct ones; a line with fewer adds its ``caption``, then template captions. A line
  with a ``caption`` and no ``paraphrases`` (the synthetic AudioSkills manifests: the events in
  order, "a doorbell, then two beeps") gets ``M`` fixed wordings of the caption
  (:data:`CAPTION_TEMPLATES`). A line with neither gets ``M`` captions built from its question
  (first line, without the choices) and answer with fixed templates (:data:`TEMPLATES`).
* **negatives**: the line's ``negatives`` (``python -m af2.data.llm negatives`` output: objects
  with ``text`` and ``kind``, or plain strings, kind ``"given"``), the first N distinct ones that
  differ from every positive, used for each of the M positives (they are negatives of the
  caption the paraphrases restate); a line with fewer adds rule-based ones of its caption. A line
  without ``negatives`` gets, per positive, N from :func:`af2.data.negatives.make_negatives`
  (seeded by the sample id); when the rules offer fewer, the template is filled with a wrong
  answer choice (kind ``"wrong_choice"``), then with a negated answer (``"negated"``).

Every negative keeps its kind (the batch's ``neg_kinds``). All of it is deterministic. Captions
are tokenised by the AF-CLAP text tokenizer: the T5 tokenizer at ``clap.text_path`` when the
model has one, else a byte-level one over the text tower's vocab.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import torch

from af2.audio.windows import split_windows_batch
from af2.data.dataset import AudioItem
from af2.data.negatives import make_negatives
from af2.data.report import Skipped
from af2.ops import contrastive_loss

TEMPLATES = (
    "a recording in which the answer to '{q}' is {a}",
    "{a}: what you hear when asked '{q}'",
    "audio where, for the question '{q}', the answer is {a}",
    "asked '{q}', a listener would say {a}",
)
#: Wordings of a line's ``caption`` (the synthetic manifests' event lists) used as its positives.
CAPTION_TEMPLATES = ("{c}", "the sound of {c}", "a recording of {c}", "you can hear {c}")
NEGATED = "a recording in which the answer to '{q}' is not {a}"


def question(prompt: str) -> str:
    return prompt.strip().splitlines()[0].strip().rstrip("?").strip() if prompt.strip() else ""


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!").strip()


@dataclass
class ClapTexts:
    """The captions of one sample: ``positives`` (M), and per positive ``negatives`` and their
    ``kinds`` (M x N); ``sources``: where positives and negatives came from ("paraphrases" / "caption" /
    "templates", "negatives" / "rules")."""

    positives: list[str]
    negatives: list[list[str]]
    kinds: list[list[str]]
    sources: tuple[str, str]


def _template_fills(template: str, q: str, answer: str, choices: Sequence[str] | None) -> list[tuple[str, str]]:
    wrong = [c for c in (choices or []) if c != answer]
    return [(template.format(q=q, a=c), "wrong_choice") for c in wrong] + [(NEGATED.format(q=q, a=answer), "negated")]


def _complete(found: list[tuple[str, str]], n: int, candidates, taken: set[str], q: str, answer: str):
    """Append ``candidates`` (text, kind) not in ``taken`` until ``n``; then numbered negations."""
    for text, kind in candidates:
        if len(found) >= n:
            break
        if _norm(text) not in taken:
            taken.add(_norm(text))
            found.append((text, kind))
    k = 0
    while len(found) < n:  # last resort: numbered negations, still deterministic and distinct
        k += 1
        text = f"{NEGATED.format(q=q, a=answer)} ({k})"
        if _norm(text) not in taken:
            taken.add(_norm(text))
            found.append((text, "negated"))
    return found[:n]


def _string_list(value, what: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: '{what}' must be a list of strings")
    return value


def _given_negatives(value, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'negatives' must be a list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append((item, "given"))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            out.append((item["text"], str(item.get("kind") or "given")))
        else:
            raise ValueError(f"{where}: each of 'negatives' must be a string or an object with a 'text'")
    return [(t.strip(), k) for t, k in out if t.strip()]


def sample_texts(sample, *, m: int, n: int, seed: int = 0) -> ClapTexts:
    """The :class:`ClapTexts` of a manifest ``Sample`` (see the module docstring)."""
    extra = sample.extra or {}
    where = f"sample {sample.id!r} (manifest line {sample.line})"
    q, answer = question(sample.prompt), sample.answer
    caption = extra.get("caption") if isinstance(extra.get("caption"), str) and extra["caption"].strip() else None
    templates = [t.format(q=q, a=answer) for t in TEMPLATES]
    salt = zlib.crc32(f"{seed}:{sample.id}".encode())

    if "paraphrases" in extra:
        pool = [p.strip() for p in _string_list(extra["paraphrases"], "paraphrases", where) if p.strip()]
        pool += [caption] if caption else []
        pool += templates
        pos_source = "paraphrases"
    elif caption:
        if m > len(CAPTION_TEMPLATES):
            raise ValueError(
                f"clap.positives={m} > {len(CAPTION_TEMPLATES)} caption wordings ({where} has "
                "a 'caption' and no 'paraphrases')"
            )
        pool, pos_source = [t.format(c=caption) for t in CAPTION_TEMPLATES], "caption"
    else:
        if m > len(TEMPLATES):
            raise ValueError(f"clap.positives={m} > {len(TEMPLATES)} caption templates ({where} has no 'paraphrases')")
        pool, pos_source = templates, "templates"
    positives, seen = [], set()
    for text in pool:
        if _norm(text) not in seen and len(positives) < m:
            seen.add(_norm(text))
            positives.append(text)
    if len(positives) < m:
        raise ValueError(f"{where}: {len(positives)} distinct positive captions, clap.positives={m}")

    if "negatives" in extra:
        taken = set(seen)
        base = caption or answer
        rules = [(neg.text, neg.kind) for neg in make_negatives(base, n, seed=salt).negatives]
        row = _complete(
            [],
            n,
            [
                *_given_negatives(extra["negatives"], where),
                *rules,
                *_template_fills(TEMPLATES[0], q, answer, sample.choices),
            ],
            taken,
            q,
            answer,
        )
        return ClapTexts(
            positives,
            [[t for t, _ in row] for _ in positives],
            [[k for _, k in row] for _ in positives],
            (pos_source, "negatives"),
        )
    negatives, kinds = [], []
    # A caption's own negatives in every wording: "the sound of <swapped caption>" is a negative of
    # "<caption>" too, so a caption with one possible rewrite still fills N with real ones.
    reworded = (
        []
        if pos_source != "caption"
        else [
            (t.format(c=neg.text), neg.kind)
            for neg in make_negatives(caption, n, seed=salt).negatives
            for t in CAPTION_TEMPLATES
        ]
    )
    for j, pos in enumerate(positives):
        template = TEMPLATES[j % len(TEMPLATES)]
        taken = set(seen)
        rules = [(neg.text, neg.kind) for neg in make_negatives(pos, n, seed=salt).negatives]
        row = _complete(
            [], n, [*rules, *reworded, *_template_fills(template, q, answer, sample.choices)], taken, q, answer
        )
        negatives.append([t for t, _ in row])
        kinds.append([k for _, k in row])
    return ClapTexts(positives, negatives, kinds, (pos_source, "rules"))


class ByteCaptionTokenizer:
    """Offline caption tokenizer for small text towers: UTF-8 bytes mapped into ``[2, vocab)``,
    0 = pad, 1 = eos."""

    def __init__(self, vocab_size: int):
        if vocab_size < 3:
            raise ValueError(f"text vocab_size {vocab_size} is too small")
        self.vocab = vocab_size

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [[2 + b % (self.vocab - 2) for b in t.encode()][: max_length - 1] + [1] for t in texts]
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0


class HFCaptionTokenizer:
    def __init__(self, path: str):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def __call__(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tok(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()


def caption_tokenizer(model_config):
    """The caption tokenizer of a model's config (an AudioFlamingo2Config or the AF2Config view)."""
    if hasattr(model_config, "to_af2_config"):
        model_config = model_config.to_af2_config()
    clap = model_config.clap
    return HFCaptionTokenizer(clap.text_path) if clap.text_path else ByteCaptionTokenizer(clap.text["vocab_size"])


class ClapCollator:
    """Items -> audio_windows (B, W, L), audio_window_mask (B, W), text_ids / text_mask
    (B, M, T), neg_ids / neg_mask (B, M·N, T) (negatives of positive j at j·N .. j·N + N - 1),
    ids, and the texts: pos_texts (B x M), neg_texts and neg_kinds (B x M·N), text_sources (B)."""

    def __init__(self, tokenizer, *, max_windows: int, m: int, n: int, max_length: int, seed: int = 0):
        self.tokenizer, self.max_windows, self.m, self.n = tokenizer, max_windows, m, n
        self.max_length, self.seed = max_length, seed

    def __call__(self, items: Sequence[AudioItem | Skipped]) -> dict:
        kept = [it for it in items if not isinstance(it, Skipped)]
        if len(kept) != len(items):
            return self._dropped(items)
        texts = [sample_texts(it.sample, m=self.m, n=self.n, seed=self.seed) for it in kept]
        pos = [p for t in texts for p in t.positives]
        neg = [x for t in texts for row in t.negatives for x in row]
        b = len(kept)
        text_ids, text_mask = self.tokenizer(pos, self.max_length)
        out = {
            "text_ids": text_ids.view(b, self.m, -1),
            "text_mask": text_mask.view(b, self.m, -1),
            "ids": [it.sample.id for it in kept],
            "skipped": [],
            "pos_texts": [t.positives for t in texts],
            "neg_texts": [[x for row in t.negatives for x in row] for t in texts],
            "neg_kinds": [[k for row in t.kinds for k in row] for t in texts],
            "text_sources": [t.sources for t in texts],
        }
        if self.n:
            neg_ids, neg_mask = self.tokenizer(neg, self.max_length)
            out.update(neg_ids=neg_ids.view(b, self.m * self.n, -1), neg_mask=neg_mask.view(b, self.m * self.n, -1))
        win = split_windows_batch(
            [it.wave for it in kept],
            sample_rate=16000,
            window_seconds=10.0,
            max_windows=self.max_windows,
            names=out["ids"],
        )
        out.update(audio_windows=win.windows, audio_window_mask=win.mask)
        return out

    @staticmethod
    def _dropped(items: Sequence[AudioItem | Skipped]) -> dict:
        """A batch with an unusable sample is dropped whole: the distributed contrastive loss
        needs the same batch size on every rank. An empty batch (``ids`` []) that the training
        stream skips on every rank together; the unusable samples keep their reason and the
        usable ones are reported as ``contrastive_batch``."""
        bad = [it for it in items if isinstance(it, Skipped)]
        why = f"dropped with its batch: {len(bad)} unusable sample(s) in it ({bad[0].id}: {bad[0].kind})"
        kept = [
            Skipped(it.index, it.sample.id, str(it.sample.audio), "contrastive_batch", why)
            for it in items
            if not isinstance(it, Skipped)
        ]
        return {"ids": [], "skipped": bad + kept}


def clap_loss(clap, batch: dict, *, m: int, n: int) -> torch.Tensor:
    """AF-CLAP's distributed contrastive loss on a :class:`ClapCollator` batch."""
    audio = clap.encode_audio(batch["audio_windows"], batch["audio_window_mask"])
    text = clap.encode_text(batch["text_ids"], batch["text_mask"])
    hard = None
    if n:
        hard = clap.encode_text(batch["neg_ids"], batch["neg_mask"]).view(audio.shape[0], m, n, -1)
    return contrastive_loss(
        audio.float(),
        text.float(),
        logit_scale=clap.logit_scale.exp().float(),
        hard_negatives=None if hard is None else hard.float(),
    )
