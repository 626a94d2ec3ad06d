"""Exit statuses of ``af2 infer`` with a tiny saved model: 0 done, 1 unreadable audio skipped,
2 bad input (one line naming the argument; the model is not even loaded, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.cli.conftest import bad_input, files_under, write_jsonl

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    from af2.model import AF2Config, AudioFlamingo2
    from af2.text.tokens import tiny_tokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval().save_pretrained(path)
    return path


@pytest.fixture
def audio(tmp_path):
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR * 2) / SR), SR)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    return tmp_path


def test_infer_done_and_partial(af2, model_dir, audio):
    manifest = write_jsonl(audio / "m.jsonl", [{"id": "q1", "audio": "tone.wav", "prompt": "What?", "answer": "x"}])
    out = audio / "preds.jsonl"
    result = af2(
        "infer", "--model", model_dir, "--input", manifest, "--output", out, "--max-new-tokens", "2", "--device", "cpu"
    )
    assert result.code == 0, result.err
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["q1"]
    result = af2(
        "infer",
        "--model",
        model_dir,
        "--audio",
        audio / "tone.wav",
        audio / "broken.wav",
        "--prompt",
        "What?",
        "--max-new-tokens",
        "2",
        "--device",
        "cpu",
    )
    assert result.code == 1 and "unreadable" in result.out.splitlines()[1]  # skipped, reported


def test_infer_bad_input_loads_nothing_writes_nothing(af2, model_dir, audio, tmp_path):
    manifest = write_jsonl(audio / "m.jsonl", [{"id": "q1", "audio": "tone.wav", "prompt": "What?", "answer": "x"}])
    out = audio / "preds.jsonl"
    run = ["--model", model_dir, "--input", manifest, "--output", out]
    (tmp_path / "empty").mkdir()
    before = files_under(tmp_path)
    for argv, words in [
        ([*run, "--batch-size", "-1"], ["--batch-size", ">= 1", "-1"]),
        ([*run, "--batch-size", "0"], ["--batch-size"]),
        ([*run, "--max-new-tokens", "0"], ["--max-new-tokens"]),
        ([*run, "--max-windows", "0"], ["--max-windows"]),
        ([*run, "--device", "tpu"], ["--device"]),
        (["--model", tmp_path / "nope", "--input", manifest, "--output", out], ["--model", "no such directory"]),
        (["--model", manifest, "--input", manifest, "--output", out], ["--model", "not a directory"]),
        (["--model", tmp_path / "empty", "--input", manifest, "--output", out], ["--model", "config.json"]),
        (["--model", model_dir, "--input", tmp_path / "x.jsonl", "--output", out], ["--input", "no such file"]),
        (["--model", model_dir, "--input", tmp_path, "--output", out], ["--input", "is a directory"]),
        (["--model", model_dir, "--input", manifest, "--output", tmp_path / "no" / "p.jsonl"], ["--output"]),
        (["--model", model_dir, "--input", manifest, "--output", manifest], ["--output", "--input"]),
        (["--model", model_dir, "--input", manifest], ["--input needs --output"]),
        (["--model", model_dir, "--audio", tmp_path / "x.wav", "--prompt", "?"], ["--audio", "no such file"]),
        (["--model", model_dir, "--audio", audio / "tone.wav"], ["--audio needs --prompt"]),
        (["--model", model_dir], ["either --audio"]),
    ]:
        bad_input(af2("infer", *argv), *words)
    assert files_under(tmp_path) == before


def test_infer_cuda_without_cuda_is_status_2(af2, model_dir, audio):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    bad_input(
        af2("infer", "--model", model_dir, "--audio", audio / "tone.wav", "--prompt", "?", "--device", "cuda"),
        "--device cuda",
        "CUDA is not available",
    )


def test_infer_max_prompt_tokens_records_the_long_prompt_and_answers_the_rest(af2, model_dir, audio):
    rows = [
        {"id": "short", "audio": "tone.wav", "prompt": "What?", "answer": "x"},
        {"id": "long", "audio": "tone.wav", "prompt": "what is that sound " * 20, "answer": "x"},
    ]
    manifest = write_jsonl(audio / "m.jsonl", rows)
    out = audio / "preds.jsonl"
    result = af2(
        "infer",
        "--model",
        model_dir,
        "--input",
        manifest,
        "--output",
        out,
        "--max-new-tokens",
        "2",
        "--max-prompt-tokens",
        "16",
        "--device",
        "cpu",
    )
    assert result.code == 1, result.err  # partial: the long prompt is an item error
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["short"]
    errors = [json.loads(x) for x in (audio / "preds.jsonl.errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["long"]
    assert (
        af2("infer", "--model", model_dir, "--input", manifest, "--output", out, "--max-prompt-tokens", "0").code == 2
    )
