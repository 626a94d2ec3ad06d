"""Which option a multiple-choice prediction picks, and text normalisation."""

from __future__ import annotations

import pytest

from af2.eval.normalize import normalize, normalized_match
from af2.eval.parsing import parse_choice

CHOICES = ["A dog barking", "a cat meowing", "Rain", "dog"]


@pytest.mark.parametrize(
    "prediction, index, how",
    [
        ("(A)", 0, "label"),
        ("A.", 0, "label"),
        ("B)", 1, "label"),
        ("[C]", 2, "label"),
        ("d", 3, "label"),
        ("(b)", 1, "label"),
        ("  B  ", 1, "label"),
        ("Answer: B", 1, "label"),
        ("The answer is (C).", 2, "label"),
        ("the correct answer is C", 2, "label"),
        ("Option D is right.", 3, "label"),
        ("I would say (B), since it purrs.", 1, "label"),
        ("B. Not the rain.", 1, "label"),  # the explanation names another option: label wins
        ("(B) a cat meowing", 1, "label"),
        ("A. A dog barking!", 0, "label"),  # label and its text agree
        ("(A) a cat meowing", None, "conflict"),  # label A, but the text of option B
        ("dog barking.", 0, "exact"),
        ("RAIN", 2, "exact"),
        ("the rain", 2, "exact"),
        ("I hear a dog barking in the yard", 0, "text"),  # "dog" is part of the longer option: not counted
        ("A dog barks loudly", 3, "text"),  # the article A is no label
        ("The answer is A dog barking", 0, "text"),
        ("a dog barking, then rain", None, "ambiguous"),
        ("(A) or (B)", None, "ambiguous"),
        ("(E)", None, "none"),
        ("a horse neighs", None, "none"),
        ("", None, "empty"),
        ("  \n", None, "empty"),
    ],
)
def test_parse_choice(prediction, index, how):
    assert (parse_choice(prediction, CHOICES).index, parse_choice(prediction, CHOICES).how) == (index, how)


def test_numbers_and_letter_options():
    assert parse_choice("three", ["2", "3", "4"]).index == 1  # number words are digits
    assert parse_choice("It beeps 4 times.", ["2", "3", "4"]).index == 2
    assert parse_choice("2 or 3", ["2", "3", "4"]).how == "ambiguous"
    notes = ["E", "F", "C"]
    assert parse_choice("C", notes) == parse_choice("c", notes) and parse_choice("C", notes).index == 2  # the text
    assert parse_choice("(C)", notes).index == 2 and parse_choice("(A)", notes).index == 0  # a label


def test_labelled_choices_are_matched_by_their_text():
    assert parse_choice("cat meowing", ["(A) dog barking", "(B) cat meowing"]).index == 1


@pytest.mark.parametrize(
    "a, b, equal",
    [
        ("The dog barked three times.", "dog barked 3 times", True),
        ("  Rain!  ", "rain", True),
        ("Ｆｕｌｌ width", "full width", True),
        ("A", "the", False),
        ("A", "a.", True),
        ("a cat", "a dog", False),
    ],
)
def test_normalized_match(a, b, equal):
    assert normalized_match(a, b) is equal
    assert normalize(a) != ""
