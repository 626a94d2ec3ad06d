"""Validators of generated items. Each returns a list of problems (empty: accepted).

The problems are written for the model: the client sends them back in its repair request.
"""

from __future__ import annotations

import re

from af2.data.llm import textcheck as tc
from af2.data.negatives import KINDS as NEGATIVE_KINDS

FORMATS = ("multiple_choice", "open")

_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b", re.I)
_CLOCK = re.compile(r"\b(\d{1,2}):([0-5]\d)\b")


def paraphrase_problems(source: str, text: str, accepted: list[str], threshold: float) -> list[str]:
    """A paraphrase must keep every sound event and count and be more than a copy."""
    if not text.strip():
        return ["is empty"]
    if tc.trigram_similarity(source, text) >= threshold:
        return ["is a near-copy of the caption: reword it"]
    if any(tc.trigram_similarity(other, text) >= threshold for other in accepted):
        return ["is a near-duplicate of another paraphrase"]
    return tc.event_change(source, text)


def kind_applies(source: str, kind: str) -> bool:
    """swap_order needs two sound events in the caption, swap_attributes an attribute."""
    if kind == "swap_order":
        return tc.event_count(source) >= 2
    if kind == "swap_attributes":
        return bool(tc.attributes(source))
    return kind in NEGATIVE_KINDS


def negative_problems(source: str, text: str, kind: str) -> list[str]:
    """A hard negative must be false for the audio in the way its ``kind`` says."""
    if kind not in NEGATIVE_KINDS:
        return [f"unknown kind {kind!r}: use one of {', '.join(NEGATIVE_KINDS)}"]
    if not text.strip() or tc.normalize(text) == tc.normalize(source):
        return ["is the caption itself"]
    src, new = tc.event_sequence(source), tc.event_sequence(text)
    if kind == "substitute_event":
        dropped, added = set(src) - set(new), set(new) - set(src)
        unknown_added = tc.content_stems(text) - tc.content_stems(source)
        if not dropped or not (added or (unknown_added and len(new) < len(src))):
            return ["substitute_event must replace a sound event of the caption by another one"]
        return []
    if set(src) != set(new):
        return [f"{kind} must keep the caption's sound events; " + "; ".join(tc.event_change(source, text))]
    if not kind_applies(source, kind):
        return [
            f"{kind} does not apply: the caption has "
            + ("fewer than two sound events" if kind == "swap_order" else "no attribute (loud, distant, ...)")
        ]
    if kind == "swap_order":
        if new == src:
            return ["swap_order must change the order of the sound events"]
    elif kind == "swap_attributes":
        if tc.attributes(text) == tc.attributes(source):
            return ["swap_attributes must move or change the attributes"]
    elif tc.count_signature(text) == tc.count_signature(source):
        return ["change_count must change how many times or how many things are heard"]
    return []


def times_in(text: str) -> list[float]:
    """Times written as ``12 s``, ``3.5 seconds`` or ``1:05`` (minutes:seconds)."""
    out = [float(m.group(1)) for m in _SECONDS.finditer(text)]
    return out + [int(m.group(1)) * 60 + int(m.group(2)) for m in _CLOCK.finditer(text)]


def question_problems(
    item: dict, *, skill: str | None, fmt: str, n_choices: int, duration: float | None, skills: tuple[str, ...]
) -> list[str]:
    """A question of ``fmt`` (and of ``skill`` when one was asked for) with a usable answer."""
    problems = []
    if item.get("skill") not in skills:
        problems.append(f"skill {item.get('skill')!r} is not one of {', '.join(skills)}")
    elif skill is not None and item["skill"] != skill:
        problems.append(f"was asked for skill {skill}, got {item['skill']}")
    question, answer = str(item.get("question", "")).strip(), str(item.get("answer", "")).strip()
    if not question or not answer:
        problems.append("needs a question and an answer")
    if fmt == "multiple_choice":
        choices = [str(c).strip() for c in item.get("choices") or []]
        if len(choices) != n_choices:
            problems.append(f"needs exactly {n_choices} choices, got {len(choices)}")
        if len({tc.normalize(c) for c in choices}) != len(choices) or not all(choices):
            problems.append("choices must be distinct and non-empty")
        if sum(tc.normalize(c) == tc.normalize(answer) for c in choices) != 1:
            problems.append("the answer must be exactly one of the choices")
    elif item.get("choices"):
        problems.append("an open question has no choices")
    if duration is not None:
        late = [t for t in times_in(f"{question} {answer}") if t > duration + 1e-6]
        if late:
            problems.append(f"mentions time {late[0]:g} s, after the end of the audio ({duration:g} s)")
    return problems


def segment_problems(item: dict, segments: list[dict], *, min_segments: int, min_gap: float) -> list[str]:
    """A long-audio question must need several distant segments, each named by the text."""
    needed = item.get("needed_segments") or []
    if any(not isinstance(i, int) or not 0 <= i < len(segments) for i in needed):
        return [f"needed_segments must be indices 0..{len(segments) - 1}"]
    needed = sorted(set(needed))
    if len(needed) < min_segments:
        return [f"must need at least {min_segments} different segments, got {len(needed)}"]
    first, last = segments[needed[0]], segments[needed[-1]]
    if last["start"] - first["end"] < min_gap:
        return [
            f"the needed segments must be at least {min_gap:g} s apart "
            f"(segment {needed[0]} ends at {first['end']:g} s, {needed[-1]} starts at {last['start']:g} s)"
        ]
    said = tc.content_stems(f"{item.get('question', '')} {item.get('answer', '')}")
    unnamed = [i for i in needed if not tc.content_stems(segments[i]["caption"]) & said]
    if unnamed:
        return [f"the question and answer never refer to segment(s) {unnamed}: drop them or refer to them"]
    return []
