"""The one JSONL reader of af2: every line is a value or a per-line error, never a crash.

Manifests, the inputs and outputs of the LLM jobs, prediction files and the judge's files are
all read here. The file is read as bytes and each line decoded and parsed on its own, so a
line that is not UTF-8, not JSON, a number too long to convert, nested too deep, or a string
with a lone surrogate (it could never be written back as UTF-8) is reported with its 1-based
line number and the lines after it still load. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``; a
UTF-8 byte-order mark at the start is dropped; blank lines are skipped.

A file that is missing, a directory or unreadable raises :class:`af2.errors.InputError` (exit
status 2 on the command line) with one line naming the file.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from af2.errors import InputError

log = logging.getLogger("af2.jsonl")

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line: ``value`` (the parsed JSON) or ``error`` (why it is unusable)."""

    line: int
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read_bytes(path: str | Path, what: str = "input") -> bytes:
    """The file's bytes; :class:`InputError` naming ``what`` and the file when it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path}: is a directory, not a JSONL file") from None
    except OSError as err:
        raise InputError(f"{what} {path}: cannot be read ({err.strerror or err})") from None


def read_lines(path: str | Path, what: str = "input") -> Iterator[tuple[int, str | None, str | None]]:
    """``(line number, text, problem)`` for every line, blank ones included, 1-based; ``text``
    is None and ``problem`` says where when the line is not valid UTF-8."""
    data = read_bytes(path, what)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    for line_no, raw in enumerate(data.splitlines(), start=1):
        try:
            yield line_no, raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield line_no, None, f"not valid UTF-8 (byte {e.start + 1} of the line: {raw[e.start : e.start + 1]!r})"


def parse_line(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for a line of JSON, ``(None, reason)`` otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg} (column {e.colno})"
    except ValueError as e:  # an integer longer than Python converts
        return None, f"invalid JSON: {e}"
    except RecursionError:
        return None, "invalid JSON: nested too deep"
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None, "invalid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
    return value, None


def read_jsonl(path: str | Path, what: str = "input", *, objects: bool = True) -> Iterator[JsonlLine]:
    """Every non-blank line of a JSONL file, parsed; with ``objects`` a value that is not a
    JSON object is an error too."""
    for line_no, text, problem in read_lines(path, what):
        if problem is not None:
            yield JsonlLine(line_no, error=problem)
            continue
        if not text.strip():
            continue
        value, problem = parse_line(text)
        if problem is None and objects and not isinstance(value, dict):
            problem = f"expected a JSON object, got {type(value).__name__}"
        yield JsonlLine(line_no, value, problem) if problem is None else JsonlLine(line_no, error=problem)


def good_objects(path: str | Path, what: str = "file") -> list[dict]:
    """The JSON objects of a file af2 wrote (an output, a rejects file); a missing file is empty
    and a bad line is logged and left out."""
    if not Path(path).exists():
        return []
    out = []
    for entry in read_jsonl(path, what):
        if entry.ok:
            out.append(entry.value)
        else:
            log.warning("%s:%d: %s (line ignored)", path, entry.line, entry.error)
    return out


def cut_torn_tail(path: str | Path) -> None:
    """Cut a last line without its newline (what a kill mid-write leaves) from a file af2 appends to."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        data = (f.seek(0), f.read())[1]
    keep = data.rfind(b"\n") + 1
    log.warning("%s: cutting off a torn last line (%d bytes)", path, size - keep)
    os.truncate(path, keep)
