"""MMAU: the test-mini JSON read as published, answers matched as MMAU's evaluation.py does."""

from __future__ import annotations

import json

import pytest

from af2.eval.benchmarks import mmau
from af2.eval.benchmarks.items import BenchmarkInputError
from tests.eval.benchmarks.conftest import predictions

CHOICES = ["Man", "Woman", "Child", "Robot"]
SHARED = ["A child", "A woman", "An adult man", "A teenager"]


@pytest.mark.parametrize(
    "prediction, answer, choices, right",
    [
        ("Man", "Man", CHOICES, True),
        ("The speaker is a man.", "Man", CHOICES, True),
        ("a man or a woman", "Man", CHOICES, False),  # a word of another option
        ("", "Man", CHOICES, False),
        ("A child", "A child", SHARED, True),  # "a" is the answer's too: allowed
        ("child", "A child", SHARED, False),  # MMAU needs every answer word
        ("An adult man", "An adult man", SHARED, True),
        ("An adult man", "A child", SHARED, False),
    ],
)
def test_string_match_is_mmaus(prediction, answer, choices, right):
    assert mmau.string_match(answer, prediction, choices) is right


@pytest.mark.parametrize(
    "prediction, right",
    [("A", True), ("(a)", True), ("(A) Man", True), ("B.", False), ("(B) Woman", False), ("E", False)],
)
def test_option_labels_become_the_option_text(prediction, right, mmau_dir):
    item = next(it for it in mmau.load(mmau_dir) if it.id == "s1")
    assert mmau.is_correct(item, prediction) is right


def test_load_and_score_per_task(mmau_dir):
    items = mmau.load(mmau_dir)
    assert [it.id for it in items] == ["s1", "s2", "m1", "m2"]
    s1 = items[0]
    assert s1.audio == mmau_dir / "test-mini-audios" / "s1.wav" and s1.audio.is_file()
    assert s1.references == ("Man",) and s1.category == "sound" and s1.extra["difficulty"] == "medium"
    assert s1.prompt.endswith("Choose one:\n(A) Man\n(B) Woman\n(C) Child\n(D) Robot")
    rows = mmau.score("MMAU", items, {"s1": "Man", "s2": "a woman", "m1": "(B)"})
    by = {r.benchmark: r for r in rows}
    assert list(by) == ["MMAU (sound)", "MMAU (music)", "MMAU (all)"]
    assert (by["MMAU (sound)"].n, by["MMAU (sound)"].missing, by["MMAU (sound)"].score) == (2, 0, 50.0)
    assert (by["MMAU (music)"].n, by["MMAU (music)"].missing, by["MMAU (music)"].score) == (1, 1, 100.0)
    assert by["MMAU (all)"].score == pytest.approx(200 / 3)
    assert by["MMAU (all)"].details["by_difficulty"]["easy"] == {"n": 1, "accuracy": 0.0}


def test_bad_files_name_the_problem(tmp_path, mmau_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkInputError, match="holds no MMAU JSON"):
        mmau.load(tmp_path / "empty")
    with pytest.raises(BenchmarkInputError, match="does not exist"):
        mmau.load(tmp_path / "absent")
    rows = json.loads((mmau_dir / "mmau-test-mini.json").read_text())
    del rows[2]["choices"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(BenchmarkInputError, match="question 2 has no choices"):
        mmau.load(bad)
    bad.write_text("[{not json")
    with pytest.raises(BenchmarkInputError, match="not JSON"):
        mmau.load(bad)


def test_predictions_file_round_trip(tmp_path, mmau_dir):
    from af2.eval.benchmarks import run_benchmark

    pred = predictions(tmp_path / "p.jsonl", {"s1": "Man", "s2": "A child", "m1": "Violin", "m2": "Fast"})
    result = run_benchmark("mmau", mmau_dir, None, tmp_path / "out", predictions=pred)
    assert result.complete and [r.score for r in result.rows] == [100.0, 100.0, 100.0]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["complete"] and saved["rows"][2]["n"] == 4
