"""A stand-in engine with the interface of af2.serve.engine.Engine, for what the real one cannot
be made to do on demand: load slowly (503 while loading) or fail a request mid-answer.

It answers with the words of ``"{prompt} | {audio seconds}"``, one word per ``step_s``, up to
``max_new_tokens`` words; ``fail_after`` words into an answer it finishes with ``"error"``.
"""

from __future__ import annotations

import queue
import threading
import time

from af2.serve.protocol import Finished, RequestRejected, TokenDelta


class FakeHandle:
    def __init__(self, request, on_event):
        self.request, self.request_id = request, request.request_id
        self.prompt_tokens = len(request.prompt.split())
        self.cancelled = threading.Event()
        self.events: queue.Queue = queue.Queue()
        self.on_event = on_event or self.events.put
        self.finished = None

    def cancel(self) -> None:
        self.cancelled.set()

    def __iter__(self):
        while True:
            event = self.events.get()
            yield event
            if isinstance(event, Finished):
                return

    def result(self, timeout=None) -> Finished:
        for event in self:
            if isinstance(event, Finished):
                return event


class FakeEngine:
    def __init__(self, *, step_s: float = 0.0, fail_after: int | None = None, max_queue: int = 64):
        self.step_s, self.fail_after, self.max_queue = step_s, fail_after, max_queue
        self.pending: queue.Queue = queue.Queue()
        self.accepting = False
        self.thread = None
        self.running = 0

    def start(self) -> "FakeEngine":
        self.accepting = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    @property
    def ready(self) -> bool:
        return self.accepting

    def submit(self, request, on_event=None) -> FakeHandle:
        if not self.accepting:
            raise RequestRejected("not accepting", status=503, code="shutting_down")
        if self.pending.qsize() >= self.max_queue:
            raise RequestRejected("queue full", status=429, code="queue_full")
        handle = FakeHandle(request, on_event)
        self.pending.put(handle)
        return handle

    def _loop(self) -> None:
        while True:
            handle = self.pending.get()
            if handle is None:
                return
            self.running += 1
            try:
                self._answer(handle)
            finally:
                self.running -= 1

    def _answer(self, h: FakeHandle) -> None:
        start = time.perf_counter()
        words = f"{h.request.prompt} | {h.request.audio_seconds:.2f}".split()[: h.request.params.max_new_tokens]
        text, reason, error = "", "length" if len(words) == h.request.params.max_new_tokens else "stop", None
        for i, word in enumerate(words):
            if h.cancelled.is_set():
                reason = "cancelled"
                break
            if self.fail_after is not None and i == self.fail_after:
                reason, error = "error", "the fake engine fails here"
                break
            time.sleep(self.step_s)
            piece = word if i == 0 else " " + word
            text += piece
            h.on_event(TokenDelta(piece, (i,)))
        total = time.perf_counter() - start
        h.on_event(
            Finished(reason, text, h.prompt_tokens, len(text.split()), h.request.audio_seconds, 0.0, 0.0, total, error)
        )

    def shutdown(self, timeout: float = 30.0) -> None:
        self.accepting = False
        self.pending.put(None)
        if self.thread is not None:
            self.thread.join(timeout)

    def stats(self) -> dict:
        return {"running": self.running, "queued": self.pending.qsize()}
