"""Multiple-choice evaluation by rank classification: the model's log-likelihood of each option.

For a question with ``choices``, every option ``c`` is scored by the summed log-probability the
model gives the training-format continuation ``<audio>{prompt}<SEP>{c}<|endofchunk|>{eos}``
(exactly the tokens the collator supervises, the prompt listing the options as in training); the
prediction is the best-scoring option. This is robust for small models whose free generation
does not yet follow the option format. The audio is encoded once per question (AF-CLAP + audio
transformation) and shared by its options.

``score_choices(model, samples, ...)`` returns one :class:`ChoiceResult` per sample;
``accuracy_by_skill`` turns them into per-skill accuracy and chance (mean of 1/len(choices)).
``audio_map`` lets a caller swap the audio of each question (e.g. a shuffled-audio control).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional, Sequence

import torch

from af2.audio.io import read_audio
from af2.data.collator import AF2Collator
from af2.data.manifest import Sample
from af2.text.sample import IGNORE_INDEX


@dataclass(frozen=True)
class ChoiceResult:
    id: str
    skill: str
    qtype: str
    n_choices: int
    picked: int
    answer: int
    correct: bool
    scores: list

    def to_dict(self) -> dict:
        return asdict(self)


def _sequence_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probabilities of the supervised tokens of each row: logits (B, S, V), labels (B, S)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(-1)


@torch.no_grad()
def score_choices(
    model,
    samples: Sequence[Sample],
    *,
    max_windows: int = 3,
    batch_size: int = 16,
    audio_map: Optional[Callable[[int], int]] = None,
    progress: Optional[Callable[[int], None]] = None,
    features: Optional[dict] = None,
) -> list[ChoiceResult]:
    """Rank-classify the multiple-choice ``samples`` (those without choices are skipped). The
    audio of each distinct file (and span) in a batch is encoded once, however many questions it
    has. ``features``: a dict the caller keeps across calls with the same model (the dense
    features of every audio encoded, by file and span, on the CPU), so a second pass over the
    same audio (e.g. with ``audio_map``) skips AF-CLAP."""
    model.eval()
    device = next(model.parameters()).device
    collator = AF2Collator(model.tokenizer, max_windows=max_windows)
    samples = [s for s in samples if s.choices]
    results: list[ChoiceResult] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        sources = [samples[audio_map(start + k)] if audio_map is not None else s for k, s in enumerate(chunk)]
        keys = [(src.audio, src.start, src.end, max_windows) for src in sources]
        distinct = list(dict.fromkeys(keys))
        todo = [key for key in distinct if features is None or key not in features]
        encoded = {}
        if todo:
            waves = [torch.as_tensor(read_audio(a, start=t0, end=t1)) for a, t0, t1, _ in todo]
            win = model.window_audio(waves, max_windows=max_windows)
            windows, wmask = win.windows.to(device), win.mask.to(device)
            dense = model.clap.dense_features(windows, wmask)  # (B', W, n, D), once per distinct audio
            for j, key in enumerate(todo):
                n_win = int(wmask[j].sum())
                encoded[key] = (dense[j, :n_win], wmask[j, :n_win])
                if features is not None:
                    features[key] = (dense[j, :n_win].cpu(), wmask[j, :n_win].cpu())
        per_key = {key: encoded.get(key) or features[key] for key in distinct}
        width_w = max(per_key[key][0].shape[0] for key in distinct)
        ref = per_key[distinct[0]][0]
        dense = ref.new_zeros((len(distinct), width_w, *ref.shape[1:]), device=device)
        wmask = torch.zeros((len(distinct), width_w), dtype=torch.bool, device=device)
        for j, key in enumerate(distinct):
            d, m = per_key[key]
            dense[j, : d.shape[0]], wmask[j, : m.shape[0]] = d.to(device), m.to(device)
        slot = [distinct.index(key) for key in keys]
        rows, owner = [], []
        for q, s in enumerate(chunk):
            for c in s.choices:
                rows.append(collator.encode(collator.prompt(s), c))
                owner.append(slot[q])
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), collator.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, (i, lab) in enumerate(rows):
            ids[r, : len(i)], labels[r, : len(lab)], attn[r, : len(i)] = torch.tensor(i), torch.tensor(lab), True
        index = torch.tensor(owner, device=device)
        out = model(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            media_locations=(ids == collator.audio_id).to(device),
            dense_features=dense.index_select(0, index),
            audio_window_mask=wmask.index_select(0, index),
        )
        scores = _sequence_scores(out.logits, labels.to(device)).cpu().tolist()
        pos = 0
        for s in chunk:
            sc = scores[pos : pos + len(s.choices)]
            pos += len(s.choices)
            picked = max(range(len(sc)), key=sc.__getitem__)
            answer = s.choices.index(s.answer)
            results.append(
                ChoiceResult(
                    s.id,
                    s.skill or "untagged",
                    str(s.extra.get("qtype", "")),
                    len(s.choices),
                    picked,
                    answer,
                    picked == answer,
                    [round(x, 4) for x in sc],
                )
            )
        if progress is not None:
            progress(len(chunk))
    return results


def accuracy_by_skill(
    results: Iterable[ChoiceResult], key: Callable[[ChoiceResult], str] = lambda r: r.skill
) -> dict[str, dict]:
    """``{group: {"n", "correct", "accuracy", "chance"}}`` plus ``"all"``; chance = mean 1/len(choices)."""
    groups: dict[str, list[ChoiceResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
        groups.setdefault("all", []).append(r)
    out = {}
    for name, rs in groups.items():
        n = len(rs)
        out[name] = {
            "n": n,
            "correct": sum(r.correct for r in rs),
            "accuracy": sum(r.correct for r in rs) / n if n else 0.0,
            "chance": sum(1.0 / r.n_choices for r in rs) / n if n else 0.0,
        }
    return out
