"""The fallback parser of judge replies that hold no JSON object: "Score: 7", "7/10", "[[7]]".

It is used only when no reply of a judgement held a JSON object (a judge model or server that
does not write JSON, even after the repair requests); a JSON reply that breaks the schema
(``{"score": 11}``) is never read this way. Every score-like number in every reply is
collected: the judgement gets a score only when they all agree on one integer from 1 to 10.
A number out of range, a fraction or two different numbers give no score, and the judgement
is rejected: nothing is clamped.
"""

from __future__ import annotations

import re
from typing import Iterable

from af2.llm.jsonout import JSONProblem, parse_json

LOW, HIGH = 1, 10
_NUMBER = r"(-?\d+(?:\.\d+)?)"
PATTERNS = (
    re.compile(rf"\bscore[\"']?\s*(?:[:=]|\bis\b|\bof\b)?\s*[\"']?{_NUMBER}", re.I),  # Score: 7
    re.compile(rf"{_NUMBER}\s*(?:/|\bout\s+of\b)\s*10\b", re.I),  # 7/10
    re.compile(rf"\[\[\s*{_NUMBER}\s*\]\]"),  # [[7]]
    re.compile(rf"^\s*{_NUMBER}\s*\.?\s*$"),  # 7
)


def holds_json_object(text: str) -> bool:
    try:
        return isinstance(parse_json(text)[0], dict)
    except JSONProblem:
        return False


def numbers_in(text: str) -> list[float]:
    return [float(m.group(1)) for pattern in PATTERNS for m in pattern.finditer(text)]


def fallback_score(replies: Iterable[str]) -> tuple[int | None, list[str]]:
    """The one score all ``replies`` agree on, or None and why not."""
    replies = list(replies)
    if any(holds_json_object(text) for text in replies):
        return None, []  # a JSON judge: its schema problems stand
    found = sorted({n for text in replies for n in numbers_in(text)})
    bad = [n for n in found if not (n.is_integer() and LOW <= n <= HIGH)]
    if bad:
        return None, [f"fallback: {bad[0]:g} is not an integer score from {LOW} to {HIGH}"]
    if len(found) != 1:
        why = "no score" if not found else "different scores " + ", ".join(f"{n:g}" for n in found)
        return None, [f"fallback: {why} in the text of the replies"]
    return int(found[0]), []
