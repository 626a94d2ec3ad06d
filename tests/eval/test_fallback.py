"""Scores read from judge replies that hold no JSON; never a clamped or guessed one."""

from __future__ import annotations

import pytest

from af2.eval.fallback import fallback_score


@pytest.mark.parametrize(
    "replies, score",
    [
        (["Score: 7"], 7),
        (["I rate it 8/10."], 8),
        (["8 out of 10"], 8),
        (["Rating: [[9]]"], 9),
        (["10"], 10),
        (["score = 3, i.e. 3/10"], 3),  # the same number twice
        (['{"score": 6, explanation: unquoted'], 6),  # broken JSON
        (["the score is 4"], 4),
        (["Let me think.", "Score: 5"], 5),  # a repair reply that still is no JSON
    ],
)
def test_a_score_is_read(replies, score):
    assert fallback_score(replies) == (score, [])


@pytest.mark.parametrize(
    "replies, why",
    [
        (["Score: 11"], "11 is not an integer score from 1 to 10"),
        (["0/10"], "0 is not an integer"),
        (["Score: -2"], "-2 is not"),
        (["7.5/10"], "7.5 is not"),
        (["Score: 7. Honestly 8/10."], "different scores 7, 8"),
        (["Score: 6", "Score: 9"], "different scores 6, 9"),
        (["I cannot judge this."], "no score"),
        ([""], "no score"),
    ],
)
def test_no_score_is_invented(replies, why):
    score, problems = fallback_score(replies)
    assert score is None and why in problems[0]


def test_json_replies_are_not_read_by_the_fallback():
    assert fallback_score(['{"score": 11, "explanation": "worth 7/10"}']) == (None, [])
    assert fallback_score(["Score: 7", '{"score": 12}']) == (None, [])
