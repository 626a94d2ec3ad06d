"""The seven AudioSkills skill names (AF2 paper, section 3.2).

Manifests may tag each sample with one of these strings in their ``skill`` field; the
synthetic generator (:mod:`af2.data.synth`) tags every question it writes.
"""

from __future__ import annotations

TEMPORAL_REASONING = "temporal_reasoning"
ATTRIBUTE_IDENTIFICATION = "attribute_identification"
COUNTING = "counting"
CONTEXTUAL_SOUND_EVENT_REASONING = "contextual_sound_event_reasoning"
CONTEXTUAL_SPEECH_EVENT_REASONING = "contextual_speech_event_reasoning"
INFORMATION_EXTRACTION = "information_extraction"
GENERAL_REASONING = "general_reasoning"

SKILLS: tuple[str, ...] = (
    TEMPORAL_REASONING,
    ATTRIBUTE_IDENTIFICATION,
    COUNTING,
    CONTEXTUAL_SOUND_EVENT_REASONING,
    CONTEXTUAL_SPEECH_EVENT_REASONING,
    INFORMATION_EXTRACTION,
    GENERAL_REASONING,
)
