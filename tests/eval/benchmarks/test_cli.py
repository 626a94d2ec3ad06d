"""``python -m af2.eval.benchmarks``: exit status 0 / 1 / 2, one-line errors naming the argument,
and one end-to-end run of a tiny saved model, resumed after a kill."""

from __future__ import annotations

import json

import pytest
import torch

from af2.eval.benchmarks.__main__ import main
from tests.eval.benchmarks.conftest import predictions


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from af2.model import AF2Config, AudioFlamingo2
    from af2.text.tokens import tiny_tokenizer

    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_complete_partial_and_printed_table(mmau_dir, tmp_path, capsys):
    full = predictions(tmp_path / "full.jsonl", {"s1": "Man", "s2": "A child", "m1": "Violin", "m2": "Slow"})
    assert (
        main(
            [
                "--benchmark",
                "mmau",
                "--data",
                str(mmau_dir),
                "--output",
                str(tmp_path / "o"),
                "--predictions",
                str(full),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| MMAU test-mini (music) | accuracy % | 2 | 0 | 50.0 |" in out
    assert "| MMAU test-mini (all) | accuracy % | 4 | 0 | 75.0 |" in out
    part = predictions(tmp_path / "part.jsonl", {"s1": "Man"})
    assert (
        main(
            [
                "--benchmark",
                "MMAU",
                "--data",
                str(mmau_dir / "mmau-test-mini.json"),
                "--output",
                str(tmp_path / "o"),
                "--predictions",
                str(part),
            ]
        )
        == 1
    )
    assert "partial" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--benchmark", "mmlu"], "--benchmark: unknown benchmark 'mmlu' (known: mmau, clothoaqa"),
        (["--benchmark", "clotho"], "--data: "),
        (["--predictions", "{tmp}/absent.jsonl"], "--predictions: {tmp}/absent.jsonl does not exist"),
        (["--baseline", "{tmp}/absent.jsonl"], "--baseline: {tmp}/absent.jsonl does not exist"),
        (["--predictions", None], "--model: a model folder is needed unless --predictions is given"),
        (["--predictions", None, "--model", "{tmp}/no-model"], "--model: {tmp}/no-model is not a folder"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--log-level", "LOUD"], "--log-level: unknown level 'LOUD'"),
        (
            ["--predictions", None, "--model", "{tmp}", "--baseline", "{tmp}/absent.jsonl"],
            "--baseline: {tmp}/absent.jsonl does not exist",
        ),  # checked before any model runs
        (["--predictions", None, "--model", "{tmp}/mmau"], "--model: cannot load {tmp}/mmau:"),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(args, message, mmau_dir, tmp_path, capsys):
    good = predictions(tmp_path / "p.jsonl", {"s1": "Man"})
    argv = {"--benchmark": "mmau", "--data": str(mmau_dir), "--output": str(tmp_path / "o"), "--predictions": str(good)}
    for flag, value in zip(args[::2], args[1::2]):
        argv[flag] = None if value is None else value.format(tmp=tmp_path)
    flat = [x for k, v in argv.items() if v is not None for x in (k, v)]
    assert main(flat) == 2
    assert message.format(tmp=tmp_path) in one_error_line(capsys)


def test_usage_error_returns_2(capsys):
    assert main(["--benchmark", "mmau"]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_saved_model_answers_and_a_killed_run_resumes(model_dir, clothoaqa_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "--benchmark",
        "clothoaqa",
        "--data",
        str(clothoaqa_dir),
        "--model",
        str(model_dir),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--max-new-tokens",
        "3",
        "--batch-size",
        "3",
        "--no-progress",
    ]
    assert main(argv) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    ids = [json.loads(x)["id"] for x in lines]
    assert len(ids) == 4 == len(set(ids))
    report = json.loads((out / "results.json").read_text())
    assert report["complete"] and [r["n"] for r in report["rows"]] == [4, 3]
    assert report["model"] == str(model_dir)
    # A kill after two answers, mid-line: the rerun keeps the two, answers the rest once.
    (out / "predictions.jsonl").write_text("\n".join(lines[:2]) + '\n{"id": "rain-q1", "predic')
    assert main(argv) == 0
    again = [json.loads(x)["id"] for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert again[:2] == ids[:2] and sorted(again) == sorted(ids)
    capsys.readouterr()
