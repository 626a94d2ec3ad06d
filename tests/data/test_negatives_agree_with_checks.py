"""The rule-based negatives and the checks of generated negatives share one lexicon
(af2.data.lexicon): whatever the generator writes, the checks accept for its kind."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from af2.data import lexicon
from af2.data.llm import checks
from af2.data.negatives import make_negatives, plural
from af2.data.synth.catalog import CONTEXT_LABELS, SEQUENCE_LABELS, SHORT_LABELS
from af2.data.synth.scene import Placed, caption

SOURCES = sorted({w for group in lexicon.SIMILAR_SOURCES for w in group} | {"siren", "owl", "robot"})
ACTIONS = sorted({w for group in lexicon.SIMILAR_ACTIONS for w in group} | {"passes", "rattles"})
TIMES = ("", " once", " twice", " thrice", " three times", " 4 times", " twelve times")
LINKS = (", then ", " then ", ", and then ", " followed by ", " before ", " after ", " while ", " and ", "; ", " as ")

attribute = st.sampled_from(("",) + lexicon.ATTRIBUTES)
singular = st.builds(
    lambda attr, src, act, times: f"a {attr + ' ' if attr else ''}{src} {act}{times}",
    attribute,
    st.sampled_from(SOURCES),
    st.sampled_from(ACTIONS),
    st.sampled_from(TIMES),
)
counted = st.builds(
    lambda n, attr, src: f"{n} {attr + ' ' if attr else ''}{plural(src)}",
    st.sampled_from(("two", "three", "5", "eleven")),
    attribute,
    st.sampled_from(SOURCES),
)
clause = st.one_of(singular, counted)


@st.composite
def captions(draw):
    parts = draw(st.lists(clause, min_size=1, max_size=4))
    text = parts[0] + "".join(draw(st.sampled_from(LINKS)) + p for p in parts[1:])
    if draw(st.booleans()):
        text = text[0].upper() + text[1:] + "."
    return text


@settings(max_examples=400, deadline=None)
@given(captions(), st.integers(0, 3))
def test_every_generated_negative_passes_the_checks(caption, seed):
    for negative in make_negatives(caption, 40, seed=seed).negatives:
        assert checks.negative_problems(caption, negative.text, negative.kind) == [], (caption, negative)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(set(SEQUENCE_LABELS + SHORT_LABELS + CONTEXT_LABELS))), min_size=1, max_size=8),
    st.integers(0, 3),
)
def test_negatives_of_synthetic_captions_pass_the_checks(labels, seed):
    text = caption([Placed(label, float(k), k + 0.5, 0.5) for k, label in enumerate(labels)])
    for negative in make_negatives(text, 40, seed=seed).negatives:
        assert checks.negative_problems(text, negative.text, negative.kind) == [], (text, negative)


def test_the_substitution_groups_name_different_known_events():
    table = lexicon.tables()[0]
    for group in lexicon.SIMILAR_SOURCES + lexicon.SIMILAR_ACTIONS:
        concepts = [table.get(lexicon.stem(w)) for w in group]
        assert None not in concepts and len(set(concepts)) == len(group), (group, concepts)


def test_hyphenated_attributes_are_read_whole():
    assert lexicon.attributes("a high-pitched beep and a light-hearted laugh") == ["high-pitch", "light"]
    assert (
        checks.negative_problems(
            "a high-pitched whistle, then a low-pitched horn",
            "a low-pitched whistle, then a high-pitched horn",
            "swap_attributes",
        )
        == []
    )
