"""Metrics per sample and per skill, the summary table and ``python -m af2.eval score``."""

from __future__ import annotations

import json

import pytest

from af2.eval.__main__ import main
from af2.eval.inputs import load_references
from af2.eval.metrics import score
from tests.eval.conftest import write_jsonl

REFS = [
    {
        "id": "r0",
        "skill": "temporal_reasoning",
        "choices": ["dog barks first", "car passes first"],
        "answer": "dog barks first",
    },
    {"id": "r1", "skill": "counting", "choices": ["2", "3"], "answer": "3"},
    {"id": "r2", "skill": "general_reasoning", "choices": ["indoors", "outdoors"], "answer": "outdoors"},
    {"id": "r3", "skill": "temporal_reasoning", "answer": "The dog barks before the car passes"},
    {"id": "r4", "skill": "counting", "answer": "three beeps"},
    {"id": "r5", "answer": "a kettle"},  # untagged
]
PREDS = {
    "r0": "(A)",
    "r1": "2",
    "r2": "I am not sure.",
    "r3": "the dog barks before the car passes.",
    "r4": "three beeps",
    "zz": "a prediction without a reference",
}  # r5: none


@pytest.fixture
def files(tmp_path):
    refs = write_jsonl(tmp_path / "manifest.jsonl", [{"audio": f"{r['id']}.wav", "prompt": "What?", **r} for r in REFS])
    preds = write_jsonl(
        tmp_path / "preds.jsonl", [{"id": k, "prediction": v, "model": "af2"} for k, v in PREDS.items()]
    )
    return refs, preds


def tally(t) -> tuple:
    return t.n, t.missing, t.correct, t.exact, t.normalized, t.choice_n, t.choice_correct, t.unparsed


def test_scores_per_sample_and_per_skill(files):
    scores = score(load_references(files[0]), PREDS)
    by_id = {s.id: s for s in scores.samples}
    assert (by_id["r0"].correct, by_id["r0"].picked, by_id["r0"].parsed) == (True, 0, "label")
    assert (by_id["r1"].correct, by_id["r1"].picked, by_id["r1"].parsed) == (False, 0, "exact")
    assert (by_id["r2"].correct, by_id["r2"].picked, by_id["r2"].parsed) == (False, None, "none")
    assert (by_id["r3"].correct, by_id["r3"].exact, by_id["r3"].normalized) == (True, False, True)
    assert (by_id["r4"].exact, by_id["r5"].predicted, by_id["r5"].correct) == (True, False, False)
    assert tally(scores.overall) == (6, 1, 3, 1, 2, 3, 1, 1)
    assert list(scores.by_skill) == ["temporal_reasoning", "counting", "general_reasoning", "untagged"]
    assert tally(scores.by_skill["temporal_reasoning"]) == (2, 0, 2, 0, 1, 1, 1, 0)
    assert tally(scores.by_skill["counting"]) == (2, 0, 1, 1, 1, 1, 0, 0)
    assert tally(scores.by_skill["general_reasoning"]) == (1, 0, 0, 0, 0, 1, 0, 1)
    assert tally(scores.by_skill["untagged"]) == (1, 1, 0, 0, 0, 0, 0, 0)
    assert scores.overall.rates() == {
        "accuracy": 0.5,
        "exact_match": 1 / 6,
        "normalized_match": 1 / 3,
        "choice_accuracy": 1 / 3,
    }
    assert scores.by_skill["untagged"].rates()["choice_accuracy"] is None
    assert scores.unmatched == ["zz"]


def test_score_command_prints_the_table_and_writes_the_report(files, tmp_path, capsys):
    refs, preds = files
    with preds.open("a") as f:  # a repeated id (the first line counts), no prediction, a broken line
        f.write(json.dumps({"id": "r0", "prediction": "(B)"}) + "\n" + json.dumps({"id": "r5"}) + "\n{oops\n")
    out = tmp_path / "report.json"  # 1: three prediction lines were not used
    assert main(["score", "--pred", str(preds), "--ref", str(refs), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line and line[0].isalpha()}
    assert rows["skill"] == [
        "skill",
        "n",
        "missing",
        "accuracy",
        "%",
        "mc",
        "n",
        "mc",
        "acc",
        "%",
        "unparsed",
        "exact",
        "%",
        "norm",
        "%",
    ]
    assert rows["temporal_reasoning"] == ["temporal_reasoning", "2", "0", "100.0", "1", "100.0", "0", "0.0", "50.0"]
    assert rows["untagged"] == ["untagged", "1", "1", "0.0", "0", "-", "0", "0.0", "0.0"]
    assert rows["all"] == ["all", "6", "1", "50.0", "3", "33.3", "1", "16.7", "33.3"]
    assert "1 reference samples have no prediction" in printed and "1 predictions match no reference" in printed
    report = json.loads(out.read_text())
    assert report["overall"]["accuracy"] == 0.5 and report["by_skill"]["counting"]["exact"] == 1
    assert len(report["samples"]) == 6 and report["unmatched_predictions"] == ["zz"]
    problems = report["prediction_problems"]
    assert len(problems) == 3 and problems[0].startswith("line 7: input: duplicate id 'r0'")
    assert problems[1] == "line 8: 'prediction' is not a string" and problems[2].startswith("line 9: input:")


def test_a_bad_manifest_stops_the_score(files, tmp_path, capsys):
    refs, preds = files
    with refs.open("a") as f:
        f.write(json.dumps({"id": "bad", "audio": "x.wav", "prompt": "?", "answer": "a", "skill": "dancing"}) + "\n")
    assert main(["score", "--pred", str(preds), "--ref", str(refs)]) == 2
    assert "line 7: unknown skill 'dancing'" in capsys.readouterr().err
    assert main(["score", "--pred", str(tmp_path / "missing.jsonl"), "--ref", str(refs)]) == 2
