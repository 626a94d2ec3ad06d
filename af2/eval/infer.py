"""Batched inference with a saved AF2 model: answers for audio + prompts, resumable.

``python -m af2 infer --model DIR --audio a.wav [b.wav ...] --prompt "..."`` prints one answer per
file; ``python -m af2 infer --model DIR --input manifest.jsonl --output preds.jsonl`` answers
every manifest line (its ``audio``, ``start``/``end`` and ``prompt``; options in ``choices`` are
appended as in training, "Choose one:" and one "(A) ..." line each, unless the prompt lists
them) and appends ``{"id", "prediction", "prompt", "audio", "truncated"}`` lines to OUT, one per
sample. Rerunning skips ids already in OUT. Items that cannot be answered (a file that cannot be
read, a prompt longer than the model's context) are reported on stderr and in
``OUT.errors.jsonl`` and skipped; they never stop the run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch
from tqdm import tqdm

from af2.audio.io import AudioError, read_audio
from af2.data.manifest import load_manifest
from af2.errors import InputError
from af2.jsonl import cut_torn_tail, good_objects
from af2.text.prompts import with_choices

log = logging.getLogger("af2.infer")


@dataclass
class Request:
    """One question: id, audio path, optional [start, end) seconds, prompt."""

    id: str
    audio: Path
    prompt: str
    start: Optional[float] = None
    end: Optional[float] = None


def prompt_with_choices(prompt: str, choices: Optional[Sequence[str]]) -> str:
    """The prompt as training shows it: options appended by :func:`af2.text.prompts.with_choices`."""
    return with_choices(prompt, choices)


def requests_from_manifest(path: Path) -> tuple[list[Request], list[str]]:
    """Requests of a manifest's good lines, and one message per bad line."""
    result = load_manifest(path)
    reqs = [Request(s.id, s.audio, prompt_with_choices(s.prompt, s.choices), s.start, s.end) for s in result.samples]
    return reqs, [f"{path}:{e.line}: {e.reason}" for e in result.errors]


def done_ids(output: Path) -> set[str]:
    """Ids already answered in OUT. A torn last line from a killed run is cut; any other bad
    line is logged and left alone (its id is answered again), never a reason to drop the rest."""
    cut_torn_tail(output)
    return {obj["id"] for obj in good_objects(output, "output") if isinstance(obj.get("id"), str)}


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def context_length(model) -> Optional[int]:
    """Positions the model's LLM was built for (``max_position_embeddings``), if it says."""
    llm_config = getattr(getattr(model, "llm", None), "config", None)
    value = getattr(llm_config, "max_position_embeddings", None)
    return int(value) if value else None


def prompt_tokens(model, prompt: str) -> int:
    """Tokens of a prompt as ``generate`` feeds it: ``<audio>``, the prompt, ``<SEP>``."""
    return len(model.tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 2


class ItemError(Exception):
    """One request cannot be answered (its audio, its prompt); the others go on."""


class _Run:
    """One ``run``: answers are written (or kept) and errors recorded as they come."""

    def __init__(self, model, output, errors_path, *, max_new_tokens, max_windows, max_prompt_tokens):
        self.model, self.output, self.errors_path = model, output, errors_path
        self.max_new_tokens, self.max_windows, self.max_prompt_tokens = max_new_tokens, max_windows, max_prompt_tokens
        self.answers, self.failed, self.truncated = {}, 0, 0

    def fail(self, r: Request, error: str) -> None:
        self.failed += 1
        log.warning("skipping %s (%s): %s", r.id, r.audio, error)
        if self.errors_path:
            _append(self.errors_path, {"id": r.id, "audio": str(r.audio), "error": error})

    def prepare(self, r: Request):
        """The wave of a request, after its prompt's length is checked (nothing is allocated for
        a prompt that cannot fit)."""
        if self.max_prompt_tokens is not None:
            n = prompt_tokens(self.model, r.prompt)
            if n > self.max_prompt_tokens:
                raise ItemError(
                    f"the prompt is {n} tokens, more than the {self.max_prompt_tokens} that fit "
                    f"(--max-prompt-tokens, or the model's context minus --max-new-tokens)"
                )
        try:
            return read_audio(r.audio, start=r.start, end=r.end)
        except AudioError as e:
            raise ItemError(str(e)) from None

    def answer(self, batch: list[Request], waves: list) -> None:
        """Answer a batch; when it fails as a whole, each request alone, so one bad item costs
        only itself."""
        try:
            preds, truncated = self._generate(batch, waves)
        except Exception as err:  # noqa: BLE001 (isolate the item that fails: it is recorded)
            if len(batch) == 1:
                self.fail(batch[0], f"generation failed: {type(err).__name__}: {err}")
                return
            log.warning(
                "a batch of %d failed (%s: %s); answering its items one by one", len(batch), type(err).__name__, err
            )
            for r, wave in zip(batch, waves):
                self.answer([r], [wave])
            return
        for r, pred, cut in zip(batch, preds, truncated):
            self.truncated += cut
            if self.output:
                _append(
                    self.output,
                    {
                        "id": r.id,
                        "prediction": pred.strip(),
                        "prompt": r.prompt,
                        "audio": str(r.audio),
                        "truncated": cut,
                    },
                )
            else:
                self.answers[r.id] = pred.strip()

    def _generate(self, batch: list[Request], waves: list) -> tuple[list[str], list[bool]]:
        win = self.model.window_audio(waves, max_windows=self.max_windows, names=[str(r.audio) for r in batch])
        device = next(self.model.parameters()).device
        preds = self.model.generate(
            prompts=[r.prompt for r in batch],
            audio_windows=win.windows.to(device),
            audio_window_mask=win.mask.to(device),
            max_new_tokens=self.max_new_tokens,
        )
        return preds, [bool(t) for t in win.truncated]


def run(
    model,
    requests: Iterable[Request],
    *,
    output: Optional[Path],
    batch_size: int = 8,
    max_new_tokens: int = 64,
    max_windows: Optional[int] = None,
    max_prompt_tokens: Optional[int] = None,
    progress: bool = True,
) -> dict:
    """Answer ``requests`` in batches. With ``output``, append each answer as a JSON line (and
    skip ids already there); return counts and, without ``output``, the answers by id.

    Each request is answered or recorded as an error (``OUT.errors.jsonl``), never both, and
    an error never stops the run nor loses the rest of its batch: unreadable audio, a prompt
    longer than ``max_prompt_tokens`` (default: the model's context minus ``max_new_tokens``),
    a batch that fails (its items are then answered one by one). Audio longer than
    ``max_windows`` is cut, with a warning naming the file and ``"truncated": true`` on its line.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if max_windows is not None and max_windows < 1:
        raise InputError(f"--max-windows must be >= 1, got {max_windows}")
    if max_prompt_tokens is None:
        context = context_length(model)
        max_prompt_tokens = None if context is None else context - max_new_tokens
    requests = list(requests)
    skip = done_ids(output) if output else set()
    todo = [r for r in requests if r.id not in skip]
    errors_path = output.with_name(output.name + ".errors.jsonl") if output else None
    job = _Run(
        model,
        output,
        errors_path,
        max_new_tokens=max_new_tokens,
        max_windows=max_windows,
        max_prompt_tokens=max_prompt_tokens,
    )
    bar = tqdm(total=len(todo), desc="infer", unit="q", disable=not progress)
    for i in range(0, len(todo), batch_size):
        batch, waves = [], []
        for r in todo[i : i + batch_size]:
            try:
                waves.append(job.prepare(r))
                batch.append(r)
            except ItemError as e:
                job.fail(r, str(e))
        if batch:
            job.answer(batch, waves)
        bar.update(len(todo[i : i + batch_size]))
    bar.close()
    return {
        "answered": len(todo) - job.failed,
        "skipped_done": len(requests) - len(todo),
        "failed": job.failed,
        "truncated": job.truncated,
        "answers": job.answers,
    }


def load_model(directory: str, device: str):
    from af2.model import AudioFlamingo2

    model = AudioFlamingo2.from_pretrained(directory).eval()
    return model.to(torch.device(device))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
