"""The validators of generated captions, negatives and questions (af2.data.llm.checks)."""

import pytest

from af2.data import lexicon
from af2.data.llm import checks, textcheck
from af2.data.skills import SKILLS
from af2.llm.pipeline import keep_valid

SRC = "A dog barks twice then a car passes"


@pytest.mark.parametrize(
    "word, stem",
    [
        ("barks", "bark"),
        ("barking", "bark"),
        ("barked", "bark"),
        ("passes", "pas"),
        ("passing", "pas"),
        ("cries", "cry"),
        ("running", "run"),
        ("engines", "engin"),
        ("engine", "engin"),
        ("ring", "ring"),
        ("ringing", "ring"),
        ("bus", "bus"),
    ],
)
def test_stem_meets_word_forms(word, stem):
    assert textcheck.stem(word) == stem


def test_events_are_synonym_aware_and_ordered():
    assert textcheck.event_sequence(SRC) == ["dog", "bark", "car"]
    assert textcheck.event_sequence("An automobile drives by after a canine's barking") == ["car", "dog", "bark"]
    assert textcheck.events("Quiet room tone") == set()


def test_quantities_and_count_signature():
    assert textcheck.quantities("barks twice, then 3 cars and one bus") == {2.0: 1, 3.0: 1}
    assert textcheck.quantities("a dog barks once") == {}
    assert textcheck.count_signature("a dog barks") != textcheck.count_signature("two dogs bark")


def test_trigram_similarity():
    assert textcheck.trigram_similarity("a dog barks", "A dog barks!") == 1.0
    assert textcheck.trigram_similarity("a dog barks", "rain on a tin roof") < 0.2


@pytest.mark.parametrize(
    "text, problem",
    [
        ("A canine barks two times, after which an automobile drives by", None),
        ("a dog barks twice then a car passes.", "near-copy"),
        ("A dog barks twice and then a car goes past", None),
        ("A dog barks twice", "drops sound events: car"),
        ("A dog barks twice then a car passes in the rain", "adds sound events: rain"),
        ("A dog barks three times, then a car passes by", "changes a count"),
        ("   ", "is empty"),
    ],
)
def test_paraphrase_problems(text, problem):
    found = checks.paraphrase_problems(SRC, text, [], threshold=0.8)
    assert (problem is None and found == []) or (problem and any(problem in p for p in found)), found


def test_paraphrase_near_duplicate_of_an_accepted_one():
    kept = ["Twice a dog barks, and afterwards a car goes by"]
    assert checks.paraphrase_problems(SRC, "Twice a dog barks, and afterwards a car goes by.", kept, 0.8) == [
        "is a near-duplicate of another paraphrase"
    ]


@pytest.mark.parametrize(
    "source, text, kind, ok",
    [
        (SRC, "A car passes then a dog barks twice", "swap_order", True),
        (SRC, "A dog barks twice and then a car passes", "swap_order", False),  # same order
        ("A dog barks loudly", "Loudly, a dog barks", "swap_order", False),  # one source event only
        (
            "A loud dog barks then a quiet car passes",
            "A quiet dog barks then a loud car passes",
            "swap_attributes",
            True,
        ),
        (
            "A loud dog barks then a quiet car passes",
            "A loud dog barks then a quiet truck passes",
            "swap_attributes",
            False,
        ),
        (SRC, "A dog barks twice then a fast car passes", "swap_attributes", False),  # no attribute to swap
        (SRC, "A dog barks three times then a car passes", "change_count", True),
        ("A dog barks", "Two dogs bark", "change_count", True),
        (SRC, "A dog barks twice then a car drives past", "change_count", False),
        (SRC, "A cat meows twice then a car passes", "substitute_event", True),
        ("A dog barks", "A hyena barks", "substitute_event", True),  # unknown new event word
        (SRC, "A dog barks twice", "substitute_event", False),  # dropped, not replaced
        (SRC, SRC.lower(), "change_count", False),  # the caption itself
        (SRC, "Something else", "reverse", False),  # unknown kind
    ],
)
def test_negative_problems(source, text, kind, ok):
    found = checks.negative_problems(source, text, kind)
    assert (found == []) is ok, found


@pytest.mark.parametrize(
    "text, n",
    [
        ("A dog barks", 1),
        ("A dog barks then growls", 2),
        ("A man speaks", 1),
        ("A man speaks then a woman laughs", 2),
        (SRC, 2),
        ("Birds chirp", 1),
        ("Rain, thunder and a distant siren", 3),
    ],
)
def test_event_count_pairs_sources_with_their_sounds(text, n):
    assert textcheck.event_count(text) == n


def test_kind_applies():
    assert checks.kind_applies(SRC, "swap_order") and not checks.kind_applies("A dog barks", "swap_order")
    assert checks.kind_applies("A loud bang", "swap_attributes") and not checks.kind_applies(SRC, "swap_attributes")


def question(**kw):
    base = {
        "skill": "counting",
        "format": "multiple_choice",
        "question": "How many barks?",
        "answer": "Two",
        "choices": ["One", "two", "Three", "Four"],
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    "item, fmt, problem",
    [
        (question(), "multiple_choice", None),
        (question(skill="temporal_reasoning"), "multiple_choice", "was asked for skill counting"),
        (question(skill="dancing"), "multiple_choice", "is not one of"),
        (question(choices=["One", "Two", "Three"]), "multiple_choice", "exactly 4 choices"),
        (question(choices=["One", "Two", "two", "Four"]), "multiple_choice", "distinct"),
        (question(answer="Five"), "multiple_choice", "exactly one of the choices"),
        (question(format="open", choices=None), "open", None),
        (question(format="open"), "open", "no choices"),
        (question(answer=""), "multiple_choice", "needs a question and an answer"),
        (question(question="What happens at 45 s?", format="open", choices=None), "open", "after the end"),
        (question(question="What happens at 0:09?", format="open", choices=None), "open", None),
        (question(question="What happens at 1:05?", format="open", choices=None), "open", "mentions time 65"),
    ],
)
def test_question_problems(item, fmt, problem):
    found = checks.question_problems(item, skill="counting", fmt=fmt, n_choices=4, duration=10.0, skills=SKILLS)
    assert (problem is None and found == []) or (problem and any(problem in p for p in found)), found


SEGMENTS = [
    {"start": 0.0, "end": 10.0, "caption": "a doorbell rings"},
    {"start": 10.0, "end": 20.0, "caption": "footsteps on wooden stairs"},
    {"start": 120.0, "end": 130.0, "caption": "a kettle whistles in the kitchen"},
]


@pytest.mark.parametrize(
    "needed, text, problem",
    [
        ([0, 2], "Did the kettle whistle before or after the doorbell?", None),
        ([0, 1], "Did the footsteps come after the doorbell?", "at least 30 s apart"),
        ([0], "When did the doorbell ring?", "at least 2 different segments"),
        ([0, 0], "When did the doorbell ring?", "at least 2 different segments"),
        ([0, 7], "x", "indices 0..2"),
        (["0", 2], "x", "indices 0..2"),
        ([0, 1, 2], "Did the kettle whistle after the doorbell?", "never refer to segment(s) [1]"),
    ],
)
def test_segment_problems(needed, text, problem):
    item = {"question": text, "answer": "after", "needed_segments": needed}
    found = checks.segment_problems(item, SEGMENTS, min_segments=2, min_gap=30.0)
    assert (problem is None and found == []) or (problem and any(problem in p for p in found)), found


def test_keep_valid_with_and_without_a_quota():
    odd = lambda item, kept: [] if item % 2 else ["is even"]  # noqa: E731
    assert keep_valid([1, 2, 3], odd, "n", need=2) == ([1, 3], [])
    kept, problems = keep_valid([1, 2, 4], odd, "n", need=2)
    assert kept == [1] and problems == ["n 2 (2): is even", "n 3 (4): is even", "2 usable ns are needed, 1 are usable"]
    assert keep_valid([1, 2], odd, "n") == ([1], ["n 2 (2): is even"])


def test_lexicon_has_no_word_in_two_concepts():
    table, attributes = lexicon.tables()
    assert len(table) > 150 and "bark" in table and "loud" in attributes
    assert lexicon.SOURCES <= set(table.values())
