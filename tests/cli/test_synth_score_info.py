"""Exit statuses of ``af2 synth``, ``af2 score`` and ``af2 info``: 0 done, 1 unreadable lines
skipped, 2 bad input with one line naming the argument and nothing written."""

from __future__ import annotations

import json

from tests.cli.conftest import bad_input, files_under, write_jsonl

REFS = [
    {"id": "r0", "audio": "a.wav", "prompt": "Which?", "answer": "yes", "choices": ["yes", "no"], "skill": "counting"},
    {"id": "r1", "audio": "b.wav", "prompt": "What?", "answer": "a dog", "skill": "general_reasoning"},
]
PREDS = [{"id": "r0", "prediction": "(A)"}, {"id": "r1", "prediction": "a dog"}]


def test_synth_writes_a_set(af2, tmp_path):
    out = tmp_path / "new" / "set"  # created with its parent
    result = af2("synth", "--output", out, "--n", "7", "--n-long", "0", "--seed", "1", "--speech", "formant", "--quiet")
    assert result.code == 0, result.err
    assert json.loads(result.out[: result.out.rindex("}") + 1])["questions"] == len(
        (out / "manifest.jsonl").read_text().splitlines()
    )


def test_synth_bad_input_writes_nothing(af2, tmp_path):
    (tmp_path / "file").write_text("keep")
    for argv, words in [
        (["--n", "-5"], ["--n", ">= 1", "-5"]),
        (["--n", "0"], ["--n"]),
        (["--n-long", "-1"], ["--n-long"]),
        (["--long-min", "0"], ["--long-min"]),
        (["--long-min", "60", "--long-max", "30"], ["--long-min", "--long-max"]),
        (["--seed", "x"], ["--seed"]),
    ]:
        bad_input(af2("synth", "--output", tmp_path / "set", *argv), *words)
    bad_input(af2("synth", "--output", tmp_path / "file"), "--output", "not a directory")
    bad_input(af2("synth", "--output", tmp_path / "file" / "set"), "--output", "is a file")
    bad_input(af2("synth"), "--output")
    assert files_under(tmp_path) == {"file": b"keep"} and not (tmp_path / "set").exists()


def test_score_exit_statuses(af2, tmp_path, caplog):
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    report = tmp_path / "report.json"
    result = af2("score", "--input", preds, "--reference", refs, "--output", report)
    assert result.code == 0, result.err
    assert json.loads(report.read_text())["overall"]["accuracy"] == 1.0

    broken = write_jsonl(tmp_path / "broken.jsonl", [PREDS[0], "{not json", '{"id": "r1"}'])
    result = af2("score", "--input", broken, "--reference", refs)
    assert result.code == 1  # bad lines skipped and reported
    assert "line 2" in caplog.text and "line 3: 'prediction' is not a string (not used)" in caplog.text


def test_score_bad_input_writes_nothing(af2, tmp_path):
    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    bad_refs = write_jsonl(tmp_path / "bad_refs.jsonl", [REFS[0], {"id": "x", "audio": "x.wav"}])
    before = files_under(tmp_path)
    bad_input(af2("score", "--input", tmp_path / "missing.jsonl", "--reference", refs), "--input", "no such file")
    bad_input(af2("score", "--input", tmp_path, "--reference", refs), "--input", "is a directory")
    bad_input(af2("score", "--input", preds, "--reference", tmp_path / "nope.jsonl"), "--reference")
    bad_input(af2("score", "--input", preds, "--reference", bad_refs), "--reference", "1 bad line(s)", "line 2")
    bad_input(
        af2("score", "--input", preds, "--reference", refs, "--output", tmp_path / "no" / "r.json"),
        "--output",
        "does not exist",
    )
    bad_input(af2("score", "--input", preds, "--reference", refs, "--output", tmp_path), "--output")
    bad_input(af2("score", "--reference", refs), "--input")
    assert files_under(tmp_path) == before


def test_old_score_flags_still_work(tmp_path, capsys):
    from af2.eval.__main__ import main

    refs = write_jsonl(tmp_path / "refs.jsonl", REFS)
    preds = write_jsonl(tmp_path / "preds.jsonl", PREDS)
    assert main(["score", "--pred", str(preds), "--ref", str(refs), "--out", str(tmp_path / "r.json")]) == 0
    assert main(["score", "--input", str(preds), "--reference", str(refs)]) == 0
    assert main(["score", "--pred", str(tmp_path / "x.jsonl"), "--ref", str(refs)]) == 2
    assert "python -m af2.eval score: error: argument --input/--pred: no such file" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "score" in capsys.readouterr().out


def test_info(af2):
    result = af2("info", "--json")
    assert result.code == 0 and "torch_version" in json.loads(result.out)
    bad_input(af2("info", "--jsn"), "--jsn")
