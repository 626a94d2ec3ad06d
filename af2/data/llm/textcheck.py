"""Cheap text tests that generated captions, negatives and questions must pass.

Near-duplicates: Jaccard similarity of character trigrams. Sound events: concepts from
``lexicon.EVENTS`` found in a text (stemmed, synonym-aware). Counts: numbers, number words and
quantity words. The tests are deliberately simple and lexical: they reject an output that
drops or adds a known event word or a count, not one that is subtly wrong in meaning.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from af2.data.llm import lexicon

_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")


def normalize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower().replace("'", "")))


def words(text: str) -> list[str]:
    return normalize(text).replace("-", " ").split()


def stem(word: str) -> str:
    """A crude suffix stripper, consistent enough that word forms of one event meet."""
    w = word.lower()
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) + len(repl) >= 3 and not w.endswith("ss"):
            w = w[: len(w) - len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2]:
        w = w[:-1]
    return w


@lru_cache(maxsize=1)
def _tables() -> tuple[dict, frozenset]:
    events: dict[str, str] = {}
    for line in lexicon.EVENTS.strip().splitlines():
        concept, names = line.split(":")
        for name in names.split():
            key = stem(name.replace("-", ""))
            if events.setdefault(key, concept) != concept:
                raise ValueError(f"lexicon: {name!r} names both {events[key]!r} and {concept!r}")
    return events, frozenset(stem(w) for w in lexicon.ATTRIBUTES.split())


def event_sequence(text: str) -> list[str]:
    """Sound-event concepts in the order they are first named."""
    table, seen = _tables()[0], []
    for w in words(text):
        concept = table.get(stem(w))
        if concept and concept not in seen:
            seen.append(concept)
    return seen


def events(text: str) -> set[str]:
    return set(event_sequence(text))


def event_count(text: str) -> int:
    """About how many sound events: sources and sounds pair up ("a dog barks" is one)."""
    found = events(text)
    sources = len(found & lexicon.SOURCES)
    return max(sources, len(found) - sources)


def attributes(text: str) -> list[str]:
    table = _tables()[1]
    return [stem(w) for w in words(text) if stem(w) in table]


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
    table = _tables()[0]
    plural = sorted(table[stem(w)] for w in words(text) if stem(w) in table
                    and (w in lexicon.IRREGULAR_PLURALS or (w.endswith("s") and not w.endswith("ss"))))
    return tuple(sorted(quantities(text).items(), key=str)), tuple(plural)


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in lexicon.STOPWORDS and len(w) > 2}


def trigram_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character-trigram sets of the normalized texts."""
    grams = [{t[i:i + 3] for i in range(max(1, len(t) - 2))} for t in (f" {normalize(a)} ", f" {normalize(b)} ")]
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
