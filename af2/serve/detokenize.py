"""Incremental detokenization with stop strings: the text a request streams, delta by delta.

Each new token id extends the answer; :meth:`IncrementalDetokenizer.add` returns the text that
is now final. Text is held back while it ends in an incomplete UTF-8 character (U+FFFD) or could
still be the start of a stop string; a stop string ends the answer and neither it nor anything
after it is ever emitted. The deltas concatenated equal :attr:`text` at every point.
"""

from __future__ import annotations

from typing import Sequence

#: Tokens decoded again before the new ones, so merges across token boundaries come out right.
_CONTEXT_TOKENS = 6


class IncrementalDetokenizer:
    """``add(token_id) -> (delta, stopped)``; ``finish() -> delta`` (the held-back rest)."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self._full = ""  # decoded text of self.ids (before any stop cut)
        self._prefix_offset = 0  # ids before this are settled in self._settled
        self._settled = ""
        self.text = ""  # emitted so far
        self.stopped = False

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _update_full(self) -> None:
        """Re-decode only a window of the latest ids; earlier text is settled."""
        window = self.ids[self._prefix_offset :]
        tail = self._decode(window)
        self._full = self._settled + tail
        if len(window) > 2 * _CONTEXT_TOKENS and not tail.endswith("\ufffd"):
            keep = len(window) - _CONTEXT_TOKENS
            head = self._decode(window[:keep])
            if tail.startswith(head) and not head.endswith("\ufffd"):
                self._settled += head
                self._prefix_offset += keep

    def add(self, token_id: int) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        self.ids.append(int(token_id))
        self._update_full()
        full = self._full
        if self.stop:
            begin = max(0, len(self.text) - self._hold)
            cut = min((i for i in (full.find(s, begin) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                return self._emit(full[:cut]), True
        safe = len(full) - self._hold if self.stop else len(full)
        while safe > len(self.text) and full[safe - 1] == "\ufffd":
            safe -= 1
        return self._emit(full[:safe]), False

    def _emit(self, upto: str) -> str:
        if len(upto) <= len(self.text) or not upto.startswith(self.text):
            return ""
        delta = upto[len(self.text) :]
        self.text = upto
        return delta

    def finish(self) -> str:
        """The rest of the answer at its end (what was held back), never past a stop string."""
        if self.stopped:
            return ""
        full = self._full
        if self.stop:
            cut = min((i for i in (full.find(s) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                full = full[:cut]
        if not full.startswith(self.text):
            # Decoding was not prefix-stable: the emitted text stands; nothing contradicts it.
            return ""
        return self._emit(full)
