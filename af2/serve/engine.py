"""The continuous-batching decoding engine (docs/serving.md, "Decoding engine").

``Engine(model, processor, EngineConfig(...)).start()`` runs a scheduler thread. ``submit``
validates a :class:`~af2.serve.protocol.GenerationRequest` at once (audio decoded, resampled and
windowed, prompt tokenized, limits checked; a refusal is a
:class:`~af2.serve.protocol.RequestRejected`) and queues it; each loop of the thread

1. drops cancelled requests (their slot is free at once),
2. admits waiting requests into free batch slots: the HTSAT runs over the windows of all of them
   together (in chunks of ``audio_chunk_windows``), then each request's audio transformation,
   its blocks' media keys/values (kept in its slot) and its prompt's prefill (kept in the slot's
   static KV cache); its first token comes from the prefill,
3. runs one decode step over the running requests (rows = slots, padded to a batch bucket),
   samples each row by its own settings and streams the new text; a finished request leaves
   the batch at once, so the next loop can admit a waiting one.

Greedy decoding gives the tokens of ``model.generate(**processor(text=[prompt], audio=[audio]),
do_sample=False)``; sampling draws from a per-request generator (af2.serve.sampling).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from af2.model import generation as gen
from af2.serve.decode import DecodeStep
from af2.serve.detokenize import IncrementalDetokenizer
from af2.serve.kv_cache import StaticKVCache
from af2.serve.protocol import Event, Finished, GenerationRequest, RequestRejected, TokenDelta
from af2.serve.sampling import next_tokens, request_generator

log = logging.getLogger("af2.serve.engine")


@dataclass
class EngineConfig:
    """Limits and shapes of an :class:`Engine`.

    max_batch_size: requests decoding at once (batch slots); max_queue: requests waiting beyond
    those (more: 429 ``queue_full``); max_audio_seconds: longer audio is refused (413
    ``audio_too_long``; default the model's ``max_windows`` x 10 s; a larger value lets the
    feature extractor cut the audio to ``max_windows``); max_new_tokens: the most a request may
    ask (more: 400, param ``max_tokens``); max_prompt_tokens: longer prompts are refused (400
    ``prompt_too_long``; default the context minus ``max_new_tokens``); compile: torch.compile
    the decode step (None: on CUDA only, ``mode="reduce-overhead"`` (CUDA graphs); on the CPU
    compiling costs tens of seconds per batch bucket, so it is opt-in); batch_buckets: the decode
    batch sizes (a step pads its rows to the next one; ``max_batch_size`` is always one);
    max_seq_len: KV cache positions per slot (default ``max_prompt_tokens + max_new_tokens``);
    audio_chunk_windows: windows per HTSAT call when admitting requests (bounds memory).
    """

    max_batch_size: int = 8
    max_queue: int = 64
    max_audio_seconds: Optional[float] = None
    max_new_tokens: int = 512
    max_prompt_tokens: Optional[int] = None
    compile: Optional[bool] = None
    batch_buckets: tuple[int, ...] = (1, 2, 4, 8)
    max_seq_len: Optional[int] = None
    audio_chunk_windows: int = 32


class RequestHandle:
    """A submitted request: ``cancel()``, iterate its events (when submitted without
    ``on_event``), or wait for its :class:`Finished` with ``result()``."""

    def __init__(self, request_id: str, prompt_tokens: int, on_event: Optional[Callable[[Event], None]], wake):
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self._on_event = on_event
        self._events: Optional[queue.Queue] = queue.Queue() if on_event is None else None
        self._done = threading.Event()
        self._finished: Optional[Finished] = None
        self._cancelled = False
        self._wake = wake

    def cancel(self) -> None:
        """Free the request's batch slot at the engine's next step; its last event is Finished("cancelled")."""
        self._cancelled = True
        self._wake()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _deliver(self, event: Event) -> None:
        if isinstance(event, Finished):
            self._finished = event
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # noqa: BLE001 (a failing consumer cancels its own request only)
                log.exception("on_event of request %s raised; cancelling it", self.request_id)
                self._cancelled = True
                self._on_event = None
        elif self._events is not None:
            self._events.put(event)
        if isinstance(event, Finished):
            self._done.set()

    def __iter__(self):
        if self._events is None:
            raise TypeError("a request submitted with on_event delivers its events there, not by iteration")
        while True:
            event = self._events.get()
            yield event
            if isinstance(event, Finished):
                return

    def result(self, timeout: Optional[float] = None) -> Finished:
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.request_id} not finished after {timeout} s")
        assert self._finished is not None
        return self._finished


@dataclass
class _Sequence:
    """One admitted or waiting request and its decoding state."""

    handle: RequestHandle
    request: GenerationRequest
    inputs: dict  # the processor's tensors: input_ids (1, P), audio_windows (1, W, L), audio_window_mask (1, W)
    submitted: float
    detok: IncrementalDetokenizer
    generator: Optional[torch.Generator] = None
    slot: int = -1
    started: Optional[float] = None
    first_token: Optional[float] = None
    last_token: int = 0
    completion_tokens: int = 0


def _reject(message: str, status: int, code: str, param: Optional[str] = None) -> RequestRejected:
    return RequestRejected(message, status=status, code=code, param=param)


class Engine:
    """The decoding engine (see the module doc): ``Engine(model, processor, config).start()``."""

    def __init__(self, model, processor, config: Optional[EngineConfig] = None):
        self.model = model.eval()
        self.processor = processor
        self.config = config = config if config is not None else EngineConfig()
        if config.max_batch_size < 1 or config.max_queue < 0 or config.max_new_tokens < 1:
            raise ValueError(
                "EngineConfig: max_batch_size and max_new_tokens must be >= 1 and max_queue >= 0, got "
                f"{config.max_batch_size}, {config.max_new_tokens}, {config.max_queue}"
            )
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        text_cfg = model.llm.config
        context = int(getattr(text_cfg, "max_position_embeddings", 0) or 0) or None
        self.max_prompt_tokens = config.max_prompt_tokens
        if self.max_prompt_tokens is None:
            if context is None:
                raise ValueError("the model states no context length: set EngineConfig.max_prompt_tokens")
            self.max_prompt_tokens = context - config.max_new_tokens
        if self.max_prompt_tokens < 1:
            raise ValueError(
                f"EngineConfig: max_prompt_tokens is {self.max_prompt_tokens} (the context {context} minus "
                f"max_new_tokens {config.max_new_tokens}); lower max_new_tokens"
            )
        self.max_seq_len = config.max_seq_len or self.max_prompt_tokens + config.max_new_tokens
        if self.max_seq_len <= self.max_prompt_tokens:
            raise ValueError(
                f"EngineConfig: max_seq_len ({self.max_seq_len}) must exceed "
                f"max_prompt_tokens ({self.max_prompt_tokens})"
            )
        fe = processor.feature_extractor
        self.window_seconds = float(fe.window_seconds)
        self.max_windows = int(fe.max_windows)
        self.max_audio_seconds = (
            float(config.max_audio_seconds)
            if config.max_audio_seconds is not None
            else self.max_windows * self.window_seconds
        )
        self.tokens_per_window = int(model.config.tokens_per_window)
        ids = model.config.token_ids
        self.stop_ids = frozenset(model.generation_config.eos_token_id or [])
        self.suppress = list(model.generation_config.suppress_tokens or [])
        self.audio_token_id = ids.get("audio")
        self.pad_id = ids.get("pad", 0)
        buckets = sorted({int(b) for b in config.batch_buckets if 0 < int(b) < config.max_batch_size})
        self.buckets = [*buckets, config.max_batch_size]
        blocks = list(model.xattn.values())
        block = blocks[0] if blocks else None
        head_dim = getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // text_cfg.num_attention_heads
        self.cache = StaticKVCache(
            layers=text_cfg.num_hidden_layers,
            slots=config.max_batch_size,
            max_seq_len=self.max_seq_len,
            kv_heads=text_cfg.num_key_value_heads,
            head_dim=head_dim,
            blocks=max(len(blocks), 1),
            max_media=self.max_windows * self.tokens_per_window,
            media_heads=block.attn.heads if block else 1,
            media_dim_head=block.attn.dim_head if block else 1,
            dtype=self.dtype,
            device=self.device,
        )
        log.info(
            "decoding engine: %d slots x %d positions, caches %.1f MB",
            config.max_batch_size,
            self.max_seq_len,
            self.cache.nbytes() / 1e6,
        )
        self._step = DecodeStep(model, self.cache)
        use_compile = config.compile if config.compile is not None else self.device.type == "cuda"
        if use_compile:
            # One graph per batch bucket (the compiled step always attends all max_seq_len positions).
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * len(self.buckets))
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            for t in self.cache.tensors():
                torch._dynamo.mark_static_address(t)
            self._step_fn = torch.compile(self._step.__call__, dynamic=False, fullgraph=True, mode=mode)
        else:
            self._step_fn = self._step.__call__
        self.compiled = bool(use_compile)

        self._cond = threading.Condition()
        self._waiting: list[_Sequence] = []
        self._slots: list[Optional[_Sequence]] = [None] * config.max_batch_size
        self._live_ids: set[str] = set()
        self._accepting = False
        self._draining = False
        self._force_stop = False
        self._thread: Optional[threading.Thread] = None
        self._finished = 0
        self._warm = threading.Event()
        self._warmup_error: Optional[BaseException] = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> "Engine":
        """Start the scheduler thread (once). A compiled engine first compiles (and on CUDA
        captures) its step for every batch bucket; requests are accepted once that is done
        (:attr:`ready`). ``wait``: return only then (else poll ``ready``; submit says 503 before)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="af2-engine", daemon=True)
                self._thread.start()
        if wait:
            self._warm.wait()
            if self._warmup_error is not None:
                raise RuntimeError(f"the engine's warm-up failed: {self._warmup_error}") from self._warmup_error
        return self

    @property
    def ready(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    def _warm_up(self) -> None:
        """Run (compile) the decode step once per batch bucket on free slots (nothing is kept)."""
        if not self.compiled:
            return
        for B in self.buckets:
            for _ in range(3 if self.device.type == "cuda" else 1):  # CUDA graphs record on a later call
                zeros = torch.zeros(B, dtype=torch.long, device=self.device)
                self._step_fn(torch.full_like(zeros, self.pad_id), zeros, self._span(1))
        self.cache.lengths = [0] * self.cache.slots

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting (submit -> 503 ``shutting_down``), let running and queued requests
        finish for up to ``timeout`` seconds, finish the rest as ``"cancelled"``, join the thread."""
        with self._cond:
            self._accepting = False
            self._draining = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return
        thread.join(max(timeout, 0.0))
        if thread.is_alive():
            with self._cond:
                self._force_stop = True
                self._cond.notify_all()
            thread.join()

    def stats(self) -> dict:
        with self._cond:
            return {
                "running": sum(s is not None for s in self._slots),
                "waiting": len(self._waiting),
                "finished": self._finished,
            }

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- submit ----------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, on_event: Optional[Callable[[Event], None]] = None) -> RequestHandle:
        """Validate and queue ``request`` (thread-safe). Raises RequestRejected: 503 not started
        / shutting down, 400 a bad parameter, audio or prompt, 413 audio too long, 429 queue full."""
        return self.submit_many([request], on_event)[0]

    def submit_many(
        self, requests: list[GenerationRequest], on_event: Optional[Callable[[Event], None]] = None
    ) -> list[RequestHandle]:
        """:meth:`submit` for several requests at once: all are validated first, then queued
        together (the engine admits them in the same step, as far as slots allow), or none is
        (the first refusal is raised)."""
        seqs = [self._validate(r, on_event) for r in requests]
        ids = [s.request.request_id for s in seqs]
        with self._cond:
            self._check_accepting()
            for rid in ids:
                if rid in self._live_ids or ids.count(rid) > 1:
                    raise _reject(f"request id {rid!r} is already running", 400, "duplicate_id", "request_id")
            free = sum(s is None for s in self._slots)
            if len(self._waiting) + len(seqs) - free > self.config.max_queue:
                raise _reject(
                    f"the queue is full ({self.config.max_queue} requests waiting); retry later", 429, "queue_full"
                )
            self._live_ids.update(ids)
            self._waiting.extend(seqs)
            self._cond.notify_all()
        return [s.handle for s in seqs]

    def _validate(self, request: GenerationRequest, on_event) -> _Sequence:
        """The checks of :meth:`submit` and the request's tensors (see there)."""
        submitted = time.monotonic()
        self._check_accepting()
        params = request.params
        if not isinstance(request.request_id, str) or not request.request_id:
            raise _reject("request_id must be a non-empty string", 400, "invalid_value", "request_id")
        if not isinstance(request.prompt, str):
            raise _reject("the prompt must be a string", 400, "invalid_value", "prompt")
        if int(params.max_new_tokens) > self.config.max_new_tokens:
            raise _reject(
                f"max_tokens is {params.max_new_tokens}, more than this server's limit of {self.config.max_new_tokens}",
                400,
                "invalid_value",
                "max_tokens",
            )
        if any(not isinstance(s, str) or not s for s in params.stop):
            raise _reject("every stop sequence must be a non-empty string", 400, "invalid_value", "stop")
        inputs = self._encode(request)
        P = int(inputs["input_ids"].shape[1])
        if P > self.max_prompt_tokens:
            raise _reject(
                f"the prompt is {P} tokens, more than the {self.max_prompt_tokens} this server takes",
                400,
                "prompt_too_long",
                "prompt",
            )
        ids = inputs["input_ids"]
        n_audio_tokens = int((ids == self.audio_token_id).sum()) if self.audio_token_id is not None else 0
        if n_audio_tokens != (0 if request.audio is None else 1):
            raise _reject(
                f"the prompt holds {n_audio_tokens} <audio> tokens; it must hold none (the audio's "
                "place is set by the prompt format)",
                400,
                "invalid_value",
                "prompt",
            )
        handle = RequestHandle(request.request_id, P, on_event, self._wake)
        seq = _Sequence(
            handle=handle,
            request=request,
            inputs=inputs,
            submitted=submitted,
            detok=IncrementalDetokenizer(self.processor.tokenizer, params.stop),
            generator=request_generator(params, self.device),
        )
        return seq

    def _check_accepting(self) -> None:
        if self._draining:
            raise _reject("the server is shutting down", 503, "shutting_down")
        if not self.ready:
            raise _reject("the engine is not ready (not started, or still loading)", 503, "not_ready")

    def _encode(self, request: GenerationRequest) -> dict:
        """The processor's tensors for one request (audio checked here: 400 / 413)."""
        if request.audio is None:
            enc = self.processor(text=[request.prompt], audio_token=False)
            return {"input_ids": enc["input_ids"]}
        audio = request.audio
        if not isinstance(audio, np.ndarray) or audio.dtype.kind not in "fiu" or audio.ndim not in (1, 2):
            shape = getattr(audio, "shape", None)
            raise _reject(
                f"audio must be a float array (T,) or (channels, T), got {type(audio).__name__} of shape {shape}",
                400,
                "invalid_audio",
                "audio",
            )
        rate = request.sampling_rate
        if not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise _reject(f"sampling_rate must be a positive integer, got {rate!r}", 400, "invalid_audio", "audio")
        if audio.shape[-1] == 0:
            raise _reject("the audio holds no samples", 400, "invalid_audio", "audio")
        seconds = request.audio_seconds
        if seconds > self.max_audio_seconds:
            raise _reject(
                f"the audio is {seconds:.1f} s, longer than the {self.max_audio_seconds:g} s this server takes",
                413,
                "audio_too_long",
                "audio",
            )
        try:
            enc = self.processor(text=[request.prompt], audio=[audio], sampling_rate=int(rate))
        except ValueError as e:
            raise _reject(f"the audio cannot be used: {e}", 400, "invalid_audio", "audio") from None
        return {k: enc[k] for k in ("input_ids", "audio_windows", "audio_window_mask")}

    # -- events ----------------------------------------------------------------------------------
    def _finish(self, seq: _Sequence, reason: str, error: Optional[str] = None) -> None:
        """Send a request's Finished, free its slot and id."""
        now = time.monotonic()
        if reason != "cancelled" and reason != "error":
            tail = seq.detok.finish()
            if tail:
                seq.handle._deliver(TokenDelta(tail, ()))
        event = Finished(
            finish_reason=reason,
            text=seq.detok.text,
            prompt_tokens=seq.handle.prompt_tokens,
            completion_tokens=seq.completion_tokens,
            audio_seconds=seq.request.audio_seconds,
            queue_s=(seq.started if seq.started is not None else now) - seq.submitted,
            ttft_s=None if seq.first_token is None else seq.first_token - seq.submitted,
            total_s=now - seq.submitted,
            error=error,
        )
        with self._cond:
            if seq.slot >= 0:
                self._slots[seq.slot] = None
                self.cache.clear_media(seq.slot)
                seq.slot = -1
            self._live_ids.discard(seq.request.request_id)
            self._finished += 1
        seq.handle._deliver(event)

    def _accept_token(self, seq: _Sequence, token: int) -> None:
        """A new token of ``seq``: stream its text, finish the request when it ends here."""
        now = time.monotonic()
        if seq.first_token is None:
            seq.first_token = now
        seq.completion_tokens += 1
        seq.last_token = token
        if token in self.stop_ids:
            self._finish(seq, "stop")
            return
        delta, stopped = seq.detok.add(token)
        seq.handle._deliver(TokenDelta(delta, (token,)))
        if seq.handle.cancelled:
            self._finish(seq, "cancelled")
        elif stopped:
            self._finish(seq, "stop")
        elif seq.completion_tokens >= seq.request.params.max_new_tokens:
            self._finish(seq, "length")
        elif self.cache.lengths[seq.slot] >= self.max_seq_len:
            self._finish(seq, "length")

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.no_grad():
            try:
                self._warm_up()
            except Exception as err:  # noqa: BLE001 (reported by start; the engine never accepts)
                if self.config.compile is None:  # compiling was this engine's default: decode eagerly
                    log.warning("compiling the decode step failed (%s: %s); decoding eagerly", type(err).__name__, err)
                    self._step_fn, self.compiled = self._step.__call__, False
                    self.cache.lengths = [0] * self.cache.slots
                else:
                    log.exception("the engine's warm-up failed")
                    self._warmup_error = err
                    self._warm.set()
                    return
            with self._cond:
                self._accepting = not self._draining
            self._warm.set()
            while True:
                try:
                    if not self._iteration():
                        return
                except Exception as err:  # noqa: BLE001 (a bug must not strand the requests)
                    log.exception("the engine loop failed; failing its requests")
                    with self._cond:
                        pending = [s for s in self._slots if s is not None] + self._waiting
                        self._waiting = []
                    for seq in pending:
                        self._finish(seq, "error", f"{type(err).__name__}: {err}")

    def _iteration(self) -> bool:
        """One scheduling round (see the module doc); False when the engine has stopped."""
        with self._cond:
            while not (self._waiting or any(self._slots) or self._draining or self._force_stop):
                self._cond.wait()
            if self._force_stop:
                pending = [s for s in self._slots if s is not None] + self._waiting
                self._waiting = []
            elif self._draining and not self._waiting and not any(self._slots):
                return False
            else:
                pending = None
                free = [i for i, s in enumerate(self._slots) if s is None]
                admit, self._waiting = self._waiting[: len(free)], self._waiting[len(free) :]
                for seq, slot in zip(admit, free):  # reserved now: submit counts them as running
                    seq.slot = slot
                    self._slots[slot] = seq
                cancelled_waiting = [s for s in self._waiting if s.handle.cancelled]
                self._waiting = [s for s in self._waiting if not s.handle.cancelled]
        if pending is not None:
            for seq in pending:
                self._finish(seq, "cancelled")
            return False
        for seq in cancelled_waiting:
            self._finish(seq, "cancelled")
        for seq in [s for s in self._slots if s is not None and s.handle.cancelled]:
            self._finish(seq, "cancelled")  # admitted ones too: their reserved slot is freed
        admit = [s for s in admit if s.slot >= 0]
        if admit:
            self._admit(admit)
        if any(self._slots):
            self._decode()
        return True

    def _admit(self, seqs: list[_Sequence]) -> None:
        """Prefill ``seqs`` into their (reserved) slots: their audio together, then each prompt."""
        now = time.monotonic()
        for seq in seqs:
            seq.started = now
        try:
            media = self._encode_audio(seqs)
        except Exception as err:  # noqa: BLE001 (the admitted requests fail, the engine goes on)
            log.exception("the audio path failed for %d requests", len(seqs))
            for seq in seqs:
                self._finish(seq, "error", f"{type(err).__name__}: {err}")
            return
        for seq in seqs:
            try:
                logits = self._prefill(seq, media.get(id(seq)))
            except Exception as err:  # noqa: BLE001
                log.exception("the prefill of request %s failed", seq.request.request_id)
                self._finish(seq, "error", f"{type(err).__name__}: {err}")
                continue
            token = next_tokens(logits, [seq.request.params], [seq.generator], self.suppress)[0]
            self._accept_token(seq, token)

    def _encode_audio(self, seqs: list[_Sequence]) -> dict:
        """{id(seq): (media (1, 1, M, D), mask (1, 1, M))} for the requests with audio: the HTSAT
        over all their windows together (chunks of ``audio_chunk_windows``), then each one's
        audio transformation."""
        with_audio = [s for s in seqs if "audio_windows" in s.inputs]
        if not with_audio:
            return {}
        model = self.model
        windows = [s.inputs["audio_windows"][0][s.inputs["audio_window_mask"][0]] for s in with_audio]  # (W_i, L)
        flat = torch.cat(windows).to(self.device)
        chunk = max(int(self.config.audio_chunk_windows), 1)
        parts = [model.clap.dense_features(flat[i : i + chunk, None])[:, 0] for i in range(0, len(flat), chunk)]
        dense = torch.cat(parts)  # (sum W_i, n, D)
        out, offset = {}, 0
        for seq, w in zip(with_audio, windows):
            feats = dense[offset : offset + w.shape[0]][None]  # (1, W, n, D)
            offset += w.shape[0]
            out[id(seq)] = model.encode_media(dense_features=feats)
        return out

    def _prefill(self, seq: _Sequence, media) -> torch.Tensor:
        """Run ``seq``'s prompt (the model's own forward), keep its keys/values and media in its
        slot; returns the logits of its last position (1, V) float32."""
        model, slot = self.model, seq.slot
        ids = seq.inputs["input_ids"].to(self.device)
        cache = gen.new_cache(model.config)
        if media is not None:
            state = gen.attach_media(cache, model.xattn, *media)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), cache=cache, use_cache=True, logits_to_keep=1)
        self.cache.write_prompt(slot, [(layer.keys, layer.values) for layer in cache.layers])
        if media is not None:
            self.cache.write_media(slot, [(state[name]["k"], state[name]["v"]) for name in model.xattn])
        else:
            self.cache.clear_media(slot)
        return out.logits[:, -1].float()

    def _bucket(self, rows: int) -> int:
        return next(b for b in self.buckets if b >= rows)

    def _span(self, longest: int) -> int:
        """Cache positions a step attends: all of them when compiled (one shape per bucket), else
        a power of two >= ``longest``, at most max_seq_len."""
        if self.compiled:
            return self.max_seq_len
        return min(self.max_seq_len, max(64, 1 << max(longest - 1, 0).bit_length()))

    def _decode(self) -> None:
        """One decode step of every running request."""
        live = [s for s in self._slots if s is not None]
        B = self._bucket(max(s.slot for s in live) + 1)
        rows: list[Optional[_Sequence]] = self._slots[:B] + [None] * (B - len(self._slots[:B]))
        tokens = [s.last_token if s is not None else self.pad_id for s in rows]
        positions = [self.cache.lengths[s.slot] if s is not None else 0 for s in rows]
        span = self._span(max(positions) + 1)
        c = self.cache
        try:
            logits = self._step_fn(
                torch.tensor(tokens, device=self.device), torch.tensor(positions, device=self.device), span
            )
        except Exception as err:  # noqa: BLE001 (the step's requests fail, the engine goes on)
            log.exception("a decode step of %d requests failed", len(live))
            for seq in live:
                self._finish(seq, "error", f"{type(err).__name__}: {err}")
            return
        for s in live:
            c.lengths[s.slot] += 1
        chosen = next_tokens(
            logits,
            [s.request.params if s is not None else None for s in rows],
            [s.generator if s is not None else None for s in rows],
            self.suppress,
        )
        for seq, token in zip(rows, chosen):
            if seq is not None:
                self._accept_token(seq, token)
