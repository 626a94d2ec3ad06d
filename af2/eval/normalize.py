"""Text normalisation for answer matching: case, punctuation, articles, number words.

``simplify`` folds case and Unicode forms, turns punctuation into spaces and collapses white
space. ``normalize`` also drops the articles "a", "an", "the" and writes the number words
zero to twenty as digits ("three" -> "3"), so "The dog barked three times." and "dog barked
3 times" are equal. A text that is nothing but articles ("A", "the") keeps its simplified
form instead of becoming empty, so two such texts are not equal by accident.
"""

from __future__ import annotations

import re
import unicodedata

ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    word: str(n)
    for n, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_SPACE = re.compile(r"\s+")


def simplify(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return _SPACE.sub(" ", spaced).strip()


def normalize(text: str) -> str:
    simple = simplify(text)
    words = [NUMBER_WORDS.get(w, w) for w in simple.split() if w not in ARTICLES]
    return " ".join(words) or simple


def exact_match(prediction: str, answer: str) -> bool:
    """Equal once leading and trailing white space is removed."""
    return prediction.strip() == answer.strip()


def normalized_match(prediction: str, answer: str) -> bool:
    return normalize(prediction) == normalize(answer)
