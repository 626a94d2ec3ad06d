"""Multiple-choice answers: which option does a free-form prediction pick?

Options are labelled A, B, C, ... in the order of the sample's ``choices``. ``parse_choice``
tries, in this order:

1. ``exact``: the whole prediction, normalised (``af2.eval.normalize``), is the text of one
   option ("Dog barking." for "dog barking"). It wins over a bare letter, since options may
   themselves be letters (musical notes), but not over a label with punctuation ("(C)").
2. ``label``: one option letter given as a label: the whole prediction ("B", "(b)", "B.",
   "[B]"), a leading label ("(B) ...", "B. ...", "B) ...", "B: ..."), "answer: B" /
   "the answer is (B)." / "option B", or "(B)" anywhere. Several different letters are
   ambiguous. When the text after a leading label is exactly another option's text
   ("(A) dog barking" where dog barking is B) the prediction contradicts itself: conflict.
3. ``text``: the text of exactly one option appears in the prediction as whole words; an
   option that is part of a longer option also named ("dog" in "dog barking") does not count.

Otherwise there is no choice, and ``how`` says why: ``empty``, ``none`` (nothing found),
``ambiguous`` or ``conflict``. Bare letters must be upper case (except a prediction that is
only a letter, or a parenthesised leading one), so the article in "A dog barks" is no label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from af2.eval.normalize import normalize

_WHOLE = re.compile(r"^\s*[(\[]?([A-Za-z])[)\]]?[.:]?\s*$")
_LEADING = re.compile(r"^\s*(?:[(\[]([A-Za-z])[)\]]|([A-Z])[.):])(?=\s|$)")
_ANYWHERE = [
    re.compile(r"(?i:\banswer)(?:\s+(?i:is))?\s*[:\-]?\s*[(\[]?([A-Z])[)\]]?(?=\s*(?:$|[.,;:!)]))"),
    re.compile(r"(?i:\b(?:option|choice))\s*[(\[]?([A-Z])[)\]]?(?!\w)"),
    re.compile(r"[(\[]([A-Z])[)\]]"),
]


@dataclass(frozen=True)
class Choice:
    index: int | None  # the chosen option, or None
    how: str  # exact, label, text; or empty, none, ambiguous, conflict


def label_index(letter: str, n: int) -> int | None:
    index = ord(letter.upper()) - ord("A")
    return index if 0 <= index < n else None


def strip_label(text: str) -> str:
    """``text`` without a leading option label ("(A) dog" -> "dog")."""
    return _LEADING.sub("", text, count=1).strip()


def _labels(text: str, n: int) -> set[int]:
    letters = [m.group(1) for m in [_WHOLE.match(text)] if m]
    letters += [m.group(1) or m.group(2) for m in [_LEADING.match(text)] if m]
    letters += [m.group(1) for pattern in _ANYWHERE for m in pattern.finditer(text)]
    return {i for i in (label_index(letter, n) for letter in letters) if i is not None}


def _named(norm: str, options: list[str]) -> set[int]:
    """Options whose text appears in ``norm`` as whole words, less those inside a longer one."""
    padded = f" {norm} "
    found = {i for i, opt in enumerate(options) if opt and f" {opt} " in padded}
    return {
        i for i in found if not any(options[i] != options[j] and f" {options[i]} " in f" {options[j]} " for j in found)
    }


def parse_choice(prediction: str, choices: Sequence[str]) -> Choice:
    if not prediction.strip():
        return Choice(None, "empty")
    options = [normalize(strip_label(c)) for c in choices]
    norm = normalize(prediction)
    leading = _LEADING.match(prediction) is not None
    exact = [] if leading else [i for i, opt in enumerate(options) if opt == norm]
    if exact:
        return Choice(exact[0], "exact") if len(exact) == 1 else Choice(None, "ambiguous")
    labels = _labels(prediction, len(choices))
    if len(labels) > 1:
        return Choice(None, "ambiguous")
    if labels:
        index = labels.pop()
        rest = normalize(strip_label(prediction)) if leading else None
        if rest is not None and rest != options[index] and rest in options:
            return Choice(None, "conflict")
        return Choice(index, "label")
    named = _named(norm, options)
    if len(named) == 1:
        return Choice(named.pop(), "text")
    return Choice(None, "ambiguous" if named else "none")
