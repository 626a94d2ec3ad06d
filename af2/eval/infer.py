"""Batched inference with a saved AF2 model: answers for audio + prompts, resumable, decoded by
the continuous-batching engine (af2.serve.engine; docs/serving.md).

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
from collections import deque
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


def cut_to_windows(wave: torch.Tensor, max_windows: int, name: str, feature_extractor) -> tuple[torch.Tensor, bool]:
    """``wave`` (T,) at the model's rate cut to ``max_windows`` windows of the feature extractor
    (a warning names the file), and whether it was cut."""
    sr = feature_extractor.sampling_rate
    limit = max_windows * int(sr * feature_extractor.window_seconds)
    if wave.numel() <= limit:
        return wave, False
    log.warning(
        "audio %s is %.1f s long; keeping the first %d window(s) (%.1f s) and dropping %.1f s",
        name,
        wave.numel() / sr,
        max_windows,
        limit / sr,
        (wave.numel() - limit) / sr,
    )
    return wave[:limit], True


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

    def record(self, r: Request, prediction: str, cut: bool) -> None:
        self.truncated += cut
        if self.output:
            _append(
                self.output,
                {
                    "id": r.id,
                    "prediction": prediction.strip(),
                    "prompt": r.prompt,
                    "audio": str(r.audio),
                    "truncated": cut,
                },
            )
        else:
            self.answers[r.id] = prediction.strip()


def _processor(model, max_windows: Optional[int]):
    """The model's processor as the older ``model.generate(audio, prompts)`` call used it: prompts
    as given (no official lower-casing), the audio level as read, ``max_windows`` windows."""
    proc = model.processor
    proc.official_format = False
    proc.feature_extractor.normalize = None
    if max_windows is not None:
        proc.feature_extractor.max_windows = int(max_windows)
    return proc


class _Answering:
    """Requests in flight on the decoding engine, answered (written) in the order they were read.
    A request that fails in the engine is tried once more (a failure can be another request's:
    a decode step fails for every request in it); failing again, it is recorded as an error."""

    def __init__(self, job: _Run, engine, limit: int):
        self.job, self.engine, self.limit = job, engine, limit
        self.inflight: deque = deque()
        self.serial = 0

    def _submit(self, r: Request, wave: torch.Tensor):
        from af2.serve.protocol import GenerationRequest, RequestRejected, SamplingParams

        self.serial += 1
        req = GenerationRequest(
            f"{self.serial}", r.prompt, wave.numpy(), params=SamplingParams(max_new_tokens=self.job.max_new_tokens)
        )
        try:
            return self.engine.submit(req)
        except RequestRejected as e:
            self.job.fail(r, e.message)
            return None

    def add(self, r: Request, wave: torch.Tensor, cut: bool) -> int:
        """Submit one request; returns how many requests were finished (written) meanwhile."""
        handle = self._submit(r, wave)
        if handle is not None:
            self.inflight.append((r, wave, cut, handle))
        done = 0 if handle is not None else 1
        while len(self.inflight) > self.limit:
            self._collect()
            done += 1
        return done

    def _collect(self) -> None:
        r, wave, cut, handle = self.inflight.popleft()
        fin = handle.result()
        if fin.finish_reason == "error":
            log.warning("%s failed in the engine (%s); trying it once more", r.id, fin.error)
            again = self._submit(r, wave)
            if again is None:
                return
            fin = again.result()
            if fin.finish_reason == "error":
                self.job.fail(r, f"generation failed: {fin.error}")
                return
        self.job.record(r, fin.text, cut)

    def drain(self):
        while self.inflight:
            self._collect()
            yield


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
    """Answer ``requests`` with the decoding engine (af2.serve.engine, ``batch_size`` requests
    decoding at once, greedy: each answer is ``model.generate``'s for that request alone). With
    ``output``, append each answer as a JSON line (and skip ids already there); return counts
    and, without ``output``, the answers by id.

    Each request is answered or recorded as an error (``OUT.errors.jsonl``), never both, and
    an error never stops the run nor loses another request: unreadable audio, a prompt longer
    than ``max_prompt_tokens`` (default: the model's context minus ``max_new_tokens``), a
    request that fails in the engine (tried once more, then recorded). Audio longer than
    ``max_windows`` is cut, with a warning naming the file and ``"truncated": true`` on its line.
    """
    from af2.serve.engine import Engine, EngineConfig

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
    if not todo:
        bar.close()
        return _summary(requests, todo, job)
    processor = _processor(model, max_windows)
    fe = processor.feature_extractor
    lengths = [prompt_tokens(model, r.prompt) for r in todo]
    fitting = [n for n in lengths if max_prompt_tokens is None or n <= max_prompt_tokens] or [1]
    engine = Engine(
        model,
        processor,
        EngineConfig(
            max_batch_size=batch_size,
            max_queue=batch_size,
            max_new_tokens=max_new_tokens,
            max_prompt_tokens=max(fitting),
            max_seq_len=max(fitting) + max_new_tokens,
        ),
    ).start()
    answering = _Answering(job, engine, limit=2 * batch_size)
    try:
        for r in todo:
            try:
                wave = job.prepare(r)
            except ItemError as e:
                job.fail(r, str(e))
                bar.update(1)
                continue
            wave, cut = cut_to_windows(wave, fe.max_windows, str(r.audio), fe)
            bar.update(answering.add(r, wave, cut))
        for _ in answering.drain():
            bar.update(1)
    finally:
        engine.shutdown()
        bar.close()
    return _summary(requests, todo, job)


def _summary(requests: list, todo: list, job: _Run) -> dict:
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
