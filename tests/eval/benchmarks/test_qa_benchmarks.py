"""ClothoAQA and MuChoMusic: their files read as published, scored as their authors score them."""

from __future__ import annotations

import pytest

from af2.eval.benchmarks import clothoaqa, muchomusic
from af2.eval.benchmarks.items import BenchmarkInputError
from tests.eval.benchmarks.conftest import write_csv


def test_clothoaqa_groups_annotators_into_questions(clothoaqa_dir):
    items = clothoaqa.load(clothoaqa_dir)
    assert [(it.question, it.references[0], it.extra["unanimous"], it.category) for it in items] == [
        ("Is it raining?", "yes", True, "yes/no"),
        ("What is falling?", "rain", False, "single word"),
        ("Is a cat heard?", "no", True, "yes/no"),
        ("How many dogs bark?", "two", True, "single word"),
    ]
    assert items[0].audio == clothoaqa_dir / "audio_files" / "rain.wav"
    assert items[1].extra["answers"] == ["water", "rain", "rain"]
    assert len({it.id for it in items}) == 4


@pytest.mark.parametrize(
    "reference, prediction, right",
    [
        ("yes", "Yes.", True),
        ("yes", "Yes, it is raining heavily.", True),
        ("yes", "no", False),
        ("no", "No, only a dog.", True),
        ("rain", "Rain", True),
        ("rain", "the rain", True),
        ("rain", "it is rain", False),
        ("two", "2", True),
        ("yes", "", False),
    ],
)
def test_clothoaqa_answer_matching(reference, prediction, right):
    assert clothoaqa.is_correct(reference, prediction) is right


def test_clothoaqa_rows_all_and_unanimous(clothoaqa_dir):
    items = clothoaqa.load(clothoaqa_dir)
    preds = {items[0].id: "yes", items[1].id: "water", items[2].id: "yes"}
    full, unanimous = clothoaqa.score("ClothoAQA", items, preds)
    assert (full.benchmark, full.n, full.missing, full.score) == ("ClothoAQA", 3, 1, pytest.approx(100 / 3))
    assert (unanimous.benchmark, unanimous.n, unanimous.missing, unanimous.score) == (
        "ClothoAQA (unanimous)",
        2,
        1,
        50.0,
    )
    assert full.details["by_type"]["yes/no"] == {"n": 2, "accuracy": 50.0}


def test_clothoaqa_missing_column_or_cells(tmp_path):
    write_csv(tmp_path / "clotho_aqa_test.csv", ["file_name", "question", "answer"], [["a.wav", "q?", "yes"]])
    with pytest.raises(BenchmarkInputError, match="no column 'QuestionText'"):
        clothoaqa.load(tmp_path)
    write_csv(
        tmp_path / "clotho_aqa_test.csv",
        ["file_name", "QuestionText", "answer", "confidence"],
        [["a.wav", "q?", "yes", "yes"], ["a.wav", "q?"]],
    )
    with pytest.raises(BenchmarkInputError, match=r"clotho_aqa_test.csv:3: 4 columns expected"):
        clothoaqa.load(tmp_path)


def test_muchomusic_audio_layout_and_shuffled_options(muchomusic_dir):
    first, second = muchomusic.load(muchomusic_dir)
    assert first.audio == muchomusic_dir / "musiccaps" / "audio" / "[-0Gj8-vB1q4]-[30-40].wav"
    assert first.audio.is_file()
    assert second.audio == muchomusic_dir / "sdd" / "audio" / "37" / "1037.2min.mp3"
    assert sorted(first.choices) == sorted(["Piano", "Guitar", "Trumpet", "Cello"])
    assert first.choices[first.extra["answer_index"]] == "Piano" == first.references[0]
    assert muchomusic.load(muchomusic_dir)[0].choices == first.choices  # the same order every run


@pytest.mark.parametrize(
    "output, picked",
    [
        ("B", 1),
        ("The correct answer is: (C)", 2),
        ("(B) trumpet", 1),
        ("(A) Cello", 3),  # two capitals A-D ("A", "C"): the option text decides
        ("I think it is the cello", 3),
        ("nothing", -1),
        ("The correct answer is: guitar", 0),
    ],
)
def test_muchomusic_extract_responses(output, picked):
    assert muchomusic.extract_response(output, ["Guitar", "Trumpet", "Piano", "Cello"]) == picked


def test_muchomusic_score_counts_unanswered(muchomusic_dir):
    items = muchomusic.load(muchomusic_dir)
    right = "ABCD"[items[0].extra["answer_index"]]
    [row] = muchomusic.score("MuChoMusic", items, {items[0].id: right, items[1].id: "no idea"})
    assert (row.n, row.missing, row.score, row.details["unanswered"]) == (2, 0, 50.0, 1)


def test_muchomusic_unknown_track(muchomusic_dir):
    write_csv(muchomusic_dir / "sdd" / "song_describer.csv", ["track_id", "path"], [[5, "05/5.mp3"]])
    with pytest.raises(BenchmarkInputError, match="track_id '1037' is not in sdd/song_describer.csv"):
        muchomusic.load(muchomusic_dir)


def test_muchomusic_bad_clip_times(muchomusic_dir):
    write_csv(
        muchomusic_dir / "musiccaps" / "musiccaps-public.csv",
        ["ytid", "start_s", "end_s"],
        [["-0Gj8-vB1q4", "thirty", 40]],
    )
    with pytest.raises(BenchmarkInputError, match="bad times for '-0Gj8-vB1q4'"):
        muchomusic.load(muchomusic_dir)
