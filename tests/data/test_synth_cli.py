"""The synth command line, determinism by seed, and both speech engines."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys

import pytest
import soundfile as sf

from af2.data.manifest import load_manifest
from af2.data.synth import generate, speech
from af2.data.synth.context import make_speech
from af2.data.synth.generate import SynthContext
from tests.data import analysis as A

HAVE_ESPEAK = speech.find_espeak() is not None


def _digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_cli_writes_a_loadable_set(tmp_path):
    out = tmp_path / "set"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "af2.data.synth",
            "--out",
            str(out),
            "--n",
            "14",
            "--seed",
            "3",
            "--n-long",
            "1",
            "--long-min",
            "30",
            "--long-max",
            "30",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    meta = json.loads((out / "metadata.json").read_text())
    # 14 clips (2 per skill; the 2 temporal clips ask 3 questions each) + 4 on the long scene
    assert '"questions": 22' in run.stdout and meta["questions"] == 22
    samples = load_manifest(out / "manifest.jsonl", strict=True).samples
    assert len(samples) == 22 and all(s.audio.exists() for s in samples)
    long_skills = ("counting", "temporal_reasoning", "information_extraction", "general_reasoning")
    assert all(v == 2 for k, v in meta["questions_per_skill"].items() if k not in long_skills)
    assert sf.info(out / "long" / "0000.wav").duration == pytest.approx(30.0)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(n_long=1, long_seconds=(30.0, 30.0), speech="formant")
    generate(tmp_path / "a", 14, seed=11, **kw)
    generate(tmp_path / "b", 14, seed=11, **kw)
    generate(tmp_path / "c", 14, seed=12, **kw)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_workers_write_the_same_bytes(tmp_path):
    kw = dict(n_long=1, long_seconds=(30.0, 30.0), speech="formant")
    generate(tmp_path / "one", 10, seed=5, workers=1, **kw)
    generate(tmp_path / "two", 10, seed=5, workers=2, **kw)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def test_skill_weights_set_the_mixture(tmp_path):
    from af2.data.synth import temporal
    from af2.data.synth.generate import skill_cycle

    weights = {"temporal_reasoning": 3, "attribute_identification": 2, "general_reasoning": 0}
    cycle = skill_cycle(weights)
    assert len(cycle) == 3 + 2 + 4 and "general_reasoning" not in cycle and cycle.count("temporal_reasoning") == 3
    meta = generate(tmp_path, 20, seed=0, n_long=0, speech="formant", skill_weights=weights)
    per_skill = meta["questions_per_skill"]
    asks = {s: temporal.QUESTIONS_PER_CLIP if s == "temporal_reasoning" else 1 for s in per_skill}
    assert per_skill == {s: asks[s] * sum(cycle[i % len(cycle)] == s for i in range(20)) for s in per_skill}
    assert (
        per_skill["temporal_reasoning"] == 7 * temporal.QUESTIONS_PER_CLIP
        and per_skill["attribute_identification"] == 5
    )
    assert per_skill["general_reasoning"] == 0 and meta["skill_weights"]["temporal_reasoning"] == 3
    for bad, match in (
        ({"temporal": 2}, "unknown skill 'temporal'"),
        ({"counting": -1}, "non-negative integer"),
        ({s: 0 for s in per_skill}, "every weight is 0"),
    ):
        with pytest.raises(ValueError, match=match):
            skill_cycle(bad)


def test_fallback_is_detected_and_announced(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    assert speech.find_espeak() is None
    with caplog.at_level(logging.WARNING):
        meta = generate(tmp_path, 14, seed=0, n_long=0, speech="auto")
    assert meta["speech_engine"] == "formant-fallback" and "formant-synthesised" in meta["speech_note"]
    assert "espeak-ng was not found" in caplog.text
    speech_samples = [
        s for s in load_manifest(tmp_path / "manifest.jsonl").samples if s.skill == "contextual_speech_event_reasoning"
    ]
    assert speech_samples and all(s.extra["speech_engine"] == "formant-fallback" for s in speech_samples)
    with pytest.raises(RuntimeError, match="espeak-ng is not installed"):
        speech.speech_engine("espeak")


def _speech_clips(engine, seeds):
    ctx = SynthContext(speech=engine)
    import numpy as np

    return [make_speech(np.random.default_rng([99, s]), ctx) for s in seeds]


def test_formant_speech_is_speech_with_the_stated_vowels():
    engine = speech.speech_engine("formant")
    for token in engine.vocabulary():
        x = engine.say(token)
        assert A.classify(x) == "speech" and A.vowel(x) == token[1:], token
    for clip in _speech_clips(engine, range(12)):
        assert clip.meta["speech_engine"] == "formant-fallback"
        assert "words" not in clip.questions[0].prompt


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_espeak_speech_is_real_voiced_speech():
    engine = speech.speech_engine("espeak")
    assert engine.name.startswith("espeak-ng ") and engine.uses_words
    for word in engine.vocabulary():
        x = engine.say(word)
        assert A.classify(x) == "speech", word
        assert 0.15 < len(x) / 16000 < 1.5
    assert speech.speech_engine("auto").name == engine.name
    assert all(c.meta["speech_engine"] == engine.name for c in _speech_clips(engine, range(8)))
