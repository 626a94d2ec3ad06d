"""Rule-based composition-aware hard-negative captions (for AF-CLAP's contrastive loss).

``make_negatives(caption, n, seed=...)`` rewrites a positive caption so that it keeps its
words but changes what it says, in four ways:

* ``swap_order``: reorder events joined by a sequential connective (then, followed by,
  before, after): "a dog barks, then a car passes" -> "a car passes, then a dog barks";
* ``swap_attributes``: exchange attribute words (``lexicon.ATTRIBUTES``: loud, high-pitched, ...)
  between two events: "a loud dog barks while a quiet bird sings" ->
  "a quiet dog barks while a loud bird sings";
* ``change_count``: change an explicit count: "a bell rings three times" -> "... twice";
* ``substitute_event``: replace a sound source or action with a similar one
  (``lexicon.SIMILAR_SOURCES`` / ``SIMILAR_ACTIONS``): "a dog barks" -> "a wolf barks".

The words come from :mod:`af2.data.lexicon`, the lexicon the checks of generated negatives
(:func:`af2.data.llm.checks.negative_problems`) read texts with, and a rewrite is kept only when
it changes what that lexicon reads in the way its kind says: a reordering changes the order of
two or more known sound events, a substitution replaces a known event by another one.

All candidates are enumerated, shuffled by a generator seeded by ``(seed, caption)`` and
taken round-robin over the kinds. When the caption offers fewer than ``n`` distinct
negatives, fewer are returned and ``reasons`` says why; nothing is padded or duplicated.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Sequence

from af2.data import lexicon
from af2.data.lexicon import ATTRIBUTES, NUMBER_WORDS, SIMILAR_ACTIONS, SIMILAR_SOURCES

KINDS = ("swap_order", "swap_attributes", "change_count", "substitute_event")


@dataclass(frozen=True)
class Negative:
    text: str
    kind: str  # one of KINDS


@dataclass
class NegativesResult:
    caption: str
    negatives: list[Negative]  # distinct, none equal to the caption, len <= n
    reasons: list[str]  # why fewer than n were produced (empty when len == n)


SEQUENTIAL = re.compile(r"(,?\s+(?:and\s+then|then|followed\s+by|before|after)\s+)", re.IGNORECASE)
ANY_LINK = re.compile(
    r"(,?\s+(?:and\s+then|then|followed\s+by|before|after|while|as|whereas|and)\s+|;\s*)", re.IGNORECASE
)
_ATTR_RE = re.compile(
    r"\b(" + "|".join(re.escape(a) for a in sorted(ATTRIBUTES, key=len, reverse=True)) + r")\b", re.IGNORECASE
)
_IRREGULAR = {"ox": "oxen", "sheep": "sheep", "child": "children", "man": "men", "woman": "women"}


def plural(noun: str) -> str:
    """English plural of a lexicon noun (wolf -> wolves, fox -> foxes, baby -> babies)."""
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


# surface form -> (its group, plural?) for every noun (singular and plural) and action.
_FORMS: dict[str, tuple[tuple[str, ...], bool]] = {}
for _group in SIMILAR_SOURCES:
    for _w in _group:
        _FORMS.setdefault(_w, (_group, False))
        _FORMS.setdefault(plural(_w), (_group, True))
for _group in SIMILAR_ACTIONS:
    for _w in _group:
        _FORMS.setdefault(_w, (_group, False))
_WORD_RE = re.compile(r"\b[a-zA-Z][a-zA-Z-]*\b")
_NUM = r"(?:\d+|" + "|".join(NUMBER_WORDS) + r")"
_TIMES_RE = re.compile(rf"\b(once|twice|thrice|{_NUM}\s+times)\b", re.IGNORECASE)
_PLURAL_COUNT_RE = re.compile(rf"\b({_NUM})(?!\s+times\b)(\s+(?:[a-z-]+\s+)?[a-z]+s)\b", re.IGNORECASE)
_ARTICLE_RE = re.compile(r"\b(an?)(\s+)$", re.IGNORECASE)


def _match_case(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def _replace(text: str, start: int, end: int, new: str) -> str:
    """``text`` with ``[start, end)`` replaced by ``new``, fixing a preceding a/an."""
    head = text[:start]
    m = _ARTICLE_RE.search(head)
    if m:
        article = "an" if new[:1].lower() in "aeiou" else "a"
        head = head[: m.start()] + _match_case(article, m.group(1)) + m.group(2)
    return head + new + text[end:]


def _split_ending(caption: str) -> tuple[str, str]:
    m = re.search(r"[.!?]+\s*$", caption)
    return (caption[: m.start()], caption[m.start() :]) if m else (caption, "")


def _swap_order(caption: str) -> tuple[list[str], str]:
    body, end = _split_ending(caption.strip())
    parts = SEQUENTIAL.split(body)
    clauses, links = parts[0::2], parts[1::2]
    if len(clauses) < 2:
        return [], "swap_order: no events joined by then / followed by / before / after"
    if lexicon.event_count(caption) < 2:
        return [], "swap_order: fewer than two known sound events to reorder"
    order = lexicon.event_sequence(caption)
    capital = clauses[0][:1].isupper()
    low = [c[:1].lower() + c[1:] if not c.startswith("I ") else c for c in clauses]
    out = []
    for perm in itertools.permutations(range(len(low))):
        if list(perm) == sorted(perm):
            continue
        text = "".join(itertools.chain.from_iterable(zip([low[p] for p in perm], links + [""])))
        text = (text[:1].upper() + text[1:] if capital else text) + end
        if lexicon.event_sequence(text) != order:
            out.append(text)
        if len(out) >= 24:
            break
    return out, "" if out else "swap_order: reordering the clauses does not reorder the sound events"


def _swap_attributes(caption: str) -> tuple[list[str], str]:
    # Attribute words with the clause they belong to (clauses split at any connective).
    found, offset = [], 0
    for k, piece in enumerate(ANY_LINK.split(caption)):
        if k % 2 == 0:
            found += [(k, m.start() + offset, m.end() + offset, m.group(0)) for m in _ATTR_RE.finditer(piece)]
        offset += len(piece)
    out = []
    for (ca, sa, ea, wa), (cb, sb, eb, wb) in itertools.combinations(found, 2):
        between = re.sub(r"\b(and|or)\b|[^a-zA-Z]", "", caption[ea:sb])
        if ca == cb or wa.lower() == wb.lower() or not between:  # same event, or an adjective list
            continue
        text = _replace(caption, sb, eb, _match_case(wa.lower(), wb))
        out.append(_replace(text, sa, ea, _match_case(wb.lower(), wa)))
    return out, "" if out else "swap_attributes: fewer than two events with different attribute words"


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NUMBER_WORDS.index(token.lower())


def _say(value: int, like: str) -> str:
    if like.isdigit() or value >= len(NUMBER_WORDS):
        return str(value)
    return _match_case(NUMBER_WORDS[value], like)


def _times(value: int, like: str) -> str:
    if value in (1, 2):
        return _match_case(("once", "twice")[value - 1], like)
    num = like.split()[0] if like.lower().endswith("times") else "three"
    return f"{_say(value, num)} times"


def _change_count(caption: str) -> tuple[list[str], str]:
    out = []
    for m in _TIMES_RE.finditer(caption):
        tok = m.group(1)
        word = tok.split()[0].lower()
        value = {"once": 1, "twice": 2, "thrice": 3}.get(word) or _number(word)
        for new in (value + 1, value - 1, value + 2, value - 2):
            if new >= 1 and new != value:
                out.append(_replace(caption, m.start(), m.end(), _times(new, tok)))
    for m in _PLURAL_COUNT_RE.finditer(caption):
        value = _number(m.group(1))
        for new in (value + 1, value - 1, value + 2, value - 2):
            if new >= 2 and new != value:  # stay plural so the sentence stays grammatical
                out.append(_replace(caption, m.start(), m.start() + len(m.group(1)), _say(new, m.group(1))))
    return out, "" if out else "change_count: no explicit count (e.g. 'three times', 'two dogs')"


def _substitute_event(caption: str) -> tuple[list[str], str]:
    out, before = [], lexicon.events(caption)
    for m in _WORD_RE.finditer(caption):
        word = m.group(0).lower()
        if word not in _FORMS:
            continue
        group, is_plural = _FORMS[word]
        for other in group:
            new = plural(other) if is_plural else other
            text = _replace(caption, m.start(), m.end(), _match_case(new, m.group(0)))
            after = lexicon.events(text)
            if new != word and before - after and after - before:  # one known event for another
                out.append(text)
    return out, "" if out else "substitute_event: no sound source or action from the lexicon"


_BUILDERS = {
    "swap_order": _swap_order,
    "swap_attributes": _swap_attributes,
    "change_count": _change_count,
    "substitute_event": _substitute_event,
}


def make_negatives(caption: str, n: int, *, seed: int = 0, kinds: Sequence[str] | None = None) -> NegativesResult:
    """Up to ``n`` distinct hard negatives of ``caption``, deterministic in ``(caption, seed)``.

    ``kinds`` restricts the rewrites (default: all four, taken round-robin). Returns fewer
    than ``n`` negatives, with ``reasons``, when the caption has too little structure.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    kinds = tuple(KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; expected some of {KINDS}")
    rng = random.Random(f"{seed}\x00{caption}")
    pools, reasons = {}, []
    seen = {caption.strip().lower()}
    for kind in kinds:
        texts, why = _BUILDERS[kind](caption)
        unique = []
        for t in texts:
            if t.strip().lower() not in seen:
                seen.add(t.strip().lower())
                unique.append(t)
        rng.shuffle(unique)
        pools[kind] = unique
        if why:
            reasons.append(why)
    negatives: list[Negative] = []
    while len(negatives) < n and any(pools.values()):
        for kind in kinds:
            if pools[kind] and len(negatives) < n:
                negatives.append(Negative(pools[kind].pop(0), kind))
    if len(negatives) < n:
        reasons.append(f"only {len(negatives)} distinct negative(s) possible for this caption, fewer than n={n}")
    else:
        reasons = []
    return NegativesResult(caption, negatives, reasons)
