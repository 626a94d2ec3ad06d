"""Every synthetic answer checked against the audio alone (tests/data/analysis.py).

The generator's per-clip metadata is never read: only the manifest's question (prompt,
question type) and the wav. Event identities come from acoustic descriptors.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from af2.data.manifest import load_manifest
from af2.data.skills import SKILLS
from af2.data.synth import generate
from af2.data.synth.catalog import SITUATIONS
from af2.data.synth.context import RESPONSES
from tests.data import analysis as A

N_SHORT = 112  # 16 per skill
N_LONG = 2
LONG_LANDMARKS = ("doorbell", "siren", "alarm", "phone ring")


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    meta = generate(out, N_SHORT, seed=7, n_long=N_LONG, long_seconds=(30.0, 60.0), speech="auto")
    result = load_manifest(out / "manifest.jsonl", strict=True)
    return out, meta, result.samples


def _labels(x, segs):
    return [A.classify(A.cut(x, s)) for s in segs]


def _named(prompt: str) -> list[str]:
    return re.findall(r"the ([a-z ]+?)(?: start| or |\?|,)", prompt.split("\n")[0])


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


def _expected(qtype: str, prompt: str, x: np.ndarray) -> str | None:
    """The answer as read from the audio; None when the question cannot be checked this way."""
    q = prompt.split("\n")[0]
    segs = A.segments(x)
    if qtype == "counting.easy":
        assert set(_labels(x, segs)) == {"beep"}
        return str(len(segs))
    if qtype == "counting.medium":
        pitches = np.array([A.dominant_freq(A.cut(x, s)) for s in segs])
        split = np.sqrt(pitches.min() * pitches.max())
        high = "higher" in q
        return str(int(np.sum(pitches > split) if high else np.sum(pitches < split)))
    if qtype == "counting.hard":
        target = _singular(re.search(r"How many (.+?) are there", q).group(1))
        return str(_labels(x, segs).count(target))
    if qtype.startswith("temporal."):
        labels = _labels(x, segs)
        # answers name the relation, then the sound ("first beep", "after siren")
        if qtype in ("temporal.first", "temporal.last"):
            return qtype[9:] + " " + labels[0 if qtype == "temporal.first" else -1]
        names = _named(q)
        if qtype == "temporal.after":
            return "after " + labels[labels.index(names[0]) + 1]
        if qtype == "temporal.before":
            return "before " + labels[labels.index(names[0]) - 1]
        if qtype == "temporal.first_of_two":
            return "first " + min(names, key=labels.index)
        onset = segs[labels.index(names[0])][0]
        return f"{onset:.1f} seconds"
    if qtype.startswith("attribute."):
        parts = [A.cut(x, s) for s in segs]
        if qtype == "attribute.instrument":
            return Counter(A.instrument(p) for p in parts).most_common(1)[0][0]
        assert len(parts) == 2
        measure = {
            "attribute.louder": A.rms,
            "attribute.higher": A.dominant_freq,
            "attribute.longer": lambda p: len(p),
        }[qtype]
        return "the first" if measure(parts[0]) > measure(parts[1]) else "the second"
    if qtype == "context.situation":
        labels = set(_labels(x, segs))
        labels = {"footsteps" if lab == "thud" else lab for lab in labels}
        assert len(labels) == 1, labels
        return SITUATIONS[labels.pop()]
    if qtype == "context.approach":
        assert len(segs) == 1
        return "approaching" if A.loudness_trend(A.cut(x, segs[0])) > 0 else "moving away"
    if qtype.startswith("speech."):
        labels = _labels(x, segs)
        speech_at = [i for i, lab in enumerate(labels) if lab == "speech"]
        assert speech_at, labels
        if qtype == "speech.count":
            assert set(labels) == {"speech"}, labels
            return str(len(segs))
        if qtype == "speech.vowel":
            return Counter(A.vowel(A.cut(x, segs[i])) for i in speech_at).most_common(1)[0][0]
        if qtype == "speech.word":
            assert labels == ["speech"]
            return None  # the word itself needs speech recognition, which is not available here
        event = [lab for lab in labels if lab != "speech"]
        assert len(event) == 1, labels
        if qtype == "speech.order":
            return "after" if speech_at[0] > labels.index(event[0]) else "before"
        assert speech_at[0] > labels.index(event[0])
        return RESPONSES[event[0]]
    if qtype == "info.tempo":
        onsets = [s[0] for s in A.segments(x, min_gap=0.08)]
        bpm = A.tempo_bpm(onsets)
        return f"{int(round(bpm / 5) * 5)} BPM" if abs(bpm - round(bpm / 5) * 5) < 2 else f"{bpm:.1f} BPM"
    if qtype == "info.pitch":
        assert len(segs) == 1
        return A.note_name(A.dominant_freq(A.cut(x, segs[0])))
    if qtype == "info.sources":
        return str(len(set(_labels(x, segs))))
    if qtype == "general.difference":
        a, b = (_singular(w) for w in re.search(r"How many more (.+?) than (.+?) are there", q).groups())
        labels = _labels(x, segs)
        return str(labels.count(a) - labels.count(b))
    if qtype == "general.most":
        return "the " + Counter(_labels(x, segs)).most_common(1)[0][0]
    if qtype == "general.compare_around":
        labels = _labels(x, segs)
        assert labels == ["harmonic", "alarm", "harmonic"], labels
        before, after = (A.dominant_freq(A.cut(x, segs[i])) for i in (0, 2))
        return "higher" if after > before else "lower"
    if qtype.startswith("long."):
        labels = _labels(x, segs)
        landmarks = [(seg, lab) for seg, lab in zip(segs, labels) if lab in LONG_LANDMARKS]
        if qtype == "long.summary":
            names = sorted({lab for _, lab in landmarks})
            return ", ".join(f"the {n}" for n in names[:-1]) + f" and the {names[-1]}"
        if qtype == "long.count":
            return str(labels.count(re.search(r"How many times is the (.+?) heard", q).group(1)))
        if qtype == "long.order":
            a, b = re.search(r"Which is heard first, the (.+?) or the (.+?)\?", q).groups()
            return "the " + min((a, b), key=labels.index)
        if qtype == "long.near":
            at = float(re.search(r"about (\d+) seconds", q).group(1))
            return "the " + min(landmarks, key=lambda sl: abs(sl[0][0] - at))[1]
    raise AssertionError(f"no check for question type {qtype}")


def test_every_answer_matches_the_audio(synth_set):
    out, meta, samples = synth_set
    wrong, unchecked = [], []
    cache: dict = {}
    for s in samples:
        if s.audio not in cache:
            x, sr = sf.read(s.audio, dtype="float64")
            assert sr == 16000 and x.ndim == 1
            cache = {s.audio: x}
        x = cache[s.audio]
        try:
            expected = _expected(s.extra["qtype"], s.prompt, x)
        except (AssertionError, ValueError, IndexError) as e:
            wrong.append(f"{s.id} {s.extra['qtype']}: analysis failed ({e!r}); prompt {s.prompt!r}")
            continue
        if expected is None:
            unchecked.append(s.id)
        elif expected != s.answer:
            wrong.append(f"{s.id} {s.extra['qtype']}: audio says {expected!r}, answer {s.answer!r}")
    assert not wrong, "\n".join(wrong)
    assert len(unchecked) <= len(samples) // 20


def test_set_covers_all_skills_and_question_types(synth_set):
    out, meta, samples = synth_set
    assert {s.skill for s in samples} == set(SKILLS)
    qtypes = {s.extra["qtype"] for s in samples}
    for needed in (
        "counting.easy",
        "counting.medium",
        "counting.hard",
        "temporal.onset",
        "temporal.after",
        "attribute.instrument",
        "attribute.louder",
        "context.situation",
        "context.approach",
        "speech.count",
        "speech.order",
        "speech.context",
        "info.tempo",
        "info.pitch",
        "info.sources",
        "general.difference",
        "general.most",
        "general.compare_around",
        "long.summary",
        "long.count",
        "long.order",
        "long.near",
    ):
        assert needed in qtypes, needed
    assert any(s.choices for s in samples) and any(not s.choices for s in samples)
    for s in samples:
        if s.choices:
            assert s.answer in s.choices and all(c in s.prompt for c in s.choices)
    long_files = {s.audio for s in samples if s.extra.get("long_audio")}
    assert len(long_files) == N_LONG
    for f in long_files:
        assert 30.0 <= sf.info(f).duration <= 60.0
    assert json.loads((out / "metadata.json").read_text())["questions"] == len(samples)
