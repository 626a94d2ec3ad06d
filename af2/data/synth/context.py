"""Contextual sound and speech event reasoning.

Sound: ``context.situation`` (what is most likely happening, from an everyday event) and
``context.approach`` (is the siren approaching or moving away, from its loudness trend).
Speech: ``speech.count`` (how many words / syllables), ``speech.order`` (does the person
speak before or after an event), ``speech.context`` (an event followed by speech: what is
happening), ``speech.word`` (which word; espeak-ng only) and ``speech.vowel`` (which vowel;
formant fallback only). Speech clips record the engine in ``meta["speech_engine"]``.
"""

from __future__ import annotations

import numpy as np

from af2.data.skills import CONTEXTUAL_SOUND_EVENT_REASONING as SOUND
from af2.data.skills import CONTEXTUAL_SPEECH_EVENT_REASONING as SPEECH
from af2.data.synth import events as ev
from af2.data.synth.catalog import CONTEXT_LABELS, SITUATIONS, make_event
from af2.data.synth.scene import Clip, Scene, number_options, qa
from af2.data.synth.speech import VOWELS

RESPONSES = {
    "doorbell": "someone is answering the door",
    "phone ring": "someone is answering a phone call",
    "alarm": "someone is reacting to an alarm",
}


def make_sound(rng: np.random.Generator, ctx) -> Clip:
    scene = Scene(rng)
    if rng.integers(2):
        label = CONTEXT_LABELS[int(rng.integers(len(CONTEXT_LABELS)))]
        scene.sequence(
            [(label, make_event(label, rng), 0.5) for _ in range(int(rng.integers(1, 3)))],
            start=rng.uniform(0.3, 1.0),
            gaps=(0.6, 1.2),
        )
        q = qa(
            SOUND,
            "context.situation",
            "What is most likely happening in this recording?",
            SITUATIONS[label],
            rng,
            list(SITUATIONS.values()),
        )
        return scene.clip([q])
    approaching = bool(rng.integers(2))
    sig = ev.siren(rng.uniform(4.0, 6.0))
    trend = np.linspace(0.1, 1.0, len(sig)) if approaching else np.linspace(1.0, 0.1, len(sig))
    scene.add("siren", sig * trend, rng.uniform(0.3, 1.0), 0.8)
    answer = "approaching" if approaching else "moving away"
    q = qa(
        SOUND,
        "context.approach",
        "Is the emergency vehicle approaching or moving away?",
        answer,
        rng,
        ["approaching", "moving away"],
    )
    return scene.clip([q])


def _utterances(rng, speech, k: int, token: str | None = None) -> list[tuple[str, np.ndarray, float]]:
    vocab = speech.vocabulary()
    tokens = [token or vocab[int(rng.integers(len(vocab)))] for _ in range(k)]
    return [("speech", speech.say(t), 0.6) for t in tokens]


def make_speech(rng: np.random.Generator, ctx) -> Clip:
    speech = ctx.speech
    unit = "words" if speech.uses_words else "syllables"
    qtype = ("count", "order", "context", "content")[int(rng.integers(4))]
    scene = Scene(rng)
    start = rng.uniform(0.3, 1.0)
    if qtype == "count":
        k = int(rng.integers(1, 5))
        scene.sequence(_utterances(rng, speech, k), start=start, gaps=(0.45, 0.7))
        q = qa(SPEECH, "speech.count", f"How many {unit} does the speaker say?", str(k), rng, number_options(k, 1, 8))
    elif qtype in ("order", "context"):
        label = tuple(RESPONSES)[int(rng.integers(len(RESPONSES)))]
        event = [(label, make_event(label, rng), 0.5)]
        words = _utterances(rng, speech, int(rng.integers(1, 3)))
        after = qtype == "context" or bool(rng.integers(2))
        scene.sequence(event + words if after else words + event, start=start, gaps=(0.6, 1.0))
        if qtype == "order":
            q = qa(
                SPEECH,
                "speech.order",
                f"Does the person speak before or after the {label}?",
                "after" if after else "before",
                rng,
                ["before", "after"],
            )
        else:
            q = qa(
                SPEECH,
                "speech.context",
                "A sound is followed by a person speaking. What is most likely happening?",
                RESPONSES[label],
                rng,
                list(RESPONSES.values()),
            )
    elif speech.uses_words:
        vocab = speech.vocabulary()
        word = vocab[int(rng.integers(len(vocab)))]
        scene.add("speech", speech.say(word), start, 0.6)
        q = qa(SPEECH, "speech.word", "What word does the speaker say?", word, rng, list(vocab))
    else:
        vowel = tuple(VOWELS)[int(rng.integers(len(VOWELS)))]
        token = "bdg"[int(rng.integers(3))] + vowel
        scene.sequence(_utterances(rng, speech, int(rng.integers(1, 3)), token), start=start, gaps=(0.45, 0.7))
        q = qa(
            SPEECH,
            "speech.vowel",
            "Which vowel sound does the voice make (ee, eh, ah or oo)?",
            vowel,
            rng,
            list(VOWELS),
        )
    return scene.clip([q], {"speech_engine": speech.name})
