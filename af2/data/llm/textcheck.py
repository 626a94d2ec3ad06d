"""Cheap text tests that generated captions, negatives and questions must pass.

Near-duplicates: Jaccard similarity of character trigrams. Sound events and attributes: read
with the one lexicon of :mod:`af2.data.lexicon` (stemmed, synonym-aware), the one the rule-based
negatives are written with. Counts: numbers, number words and quantity words. The tests are
deliberately simple and lexical: they reject an output that drops or adds a known event word or
a count, not one that is subtly wrong in meaning.
"""

from __future__ import annotations

from collections import Counter

from af2.data import lexicon
from af2.data.lexicon import attributes, event_count, event_sequence, events, normalize, stem, words

__all__ = [
    "attributes",
    "content_stems",
    "count_signature",
    "event_change",
    "event_count",
    "event_sequence",
    "events",
    "normalize",
    "quantities",
    "stem",
    "trigram_similarity",
    "words",
]


def quantities(text: str) -> Counter:
    """Numbers and quantity words (``twice`` is 2; ``a``/``one``/``once`` are not counts)."""
    out: Counter = Counter()
    for w in words(text):
        if w.replace(".", "", 1).isdigit() and float(w) != 1:
            out[float(w)] += 1
        elif w in lexicon.NUMBERS:
            out[float(lexicon.NUMBERS[w])] += 1
        elif w in lexicon.QUANTITY_WORDS:
            out[w] += 1
    return out


def count_signature(text: str) -> tuple:
    """Quantities plus which event nouns are plural: differs when a count changes."""
    table = lexicon.tables()[0]
    plural = sorted(
        table[stem(w)]
        for w in words(text)
        if stem(w) in table and (w in lexicon.IRREGULAR_PLURALS or (w.endswith("s") and not w.endswith("ss")))
    )
    return tuple(sorted(quantities(text).items(), key=str)), tuple(plural)


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in lexicon.STOPWORDS and len(w) > 2}


def trigram_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character-trigram sets of the normalized texts."""
    grams = [{t[i : i + 3] for i in range(max(1, len(t) - 2))} for t in (f" {normalize(a)} ", f" {normalize(b)} ")]
    return len(grams[0] & grams[1]) / max(1, len(grams[0] | grams[1]))


def event_change(source: str, text: str) -> list[str]:
    """How ``text`` differs from ``source`` in sound events and counts (empty: it doesn't)."""
    src, new = events(source), events(text)
    problems = []
    if src - new:
        problems.append("drops sound events: " + ", ".join(sorted(src - new)))
    if new - src:
        problems.append("adds sound events: " + ", ".join(sorted(new - src)))
    if quantities(source) != quantities(text):
        problems.append("changes a count")
    return problems
