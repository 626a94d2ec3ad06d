"""`python -m af2 infer`: a saved tiny model answers a manifest, batched and resumable, with bad
audio files reported and skipped; the answers equal model.generate's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from af2.model import AF2Config, AudioFlamingo2
from af2.text.tokens import tiny_tokenizer

SR = 16000


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    model = AudioFlamingo2(AF2Config.preset("tiny"), tokenizer=tiny_tokenizer()).eval()
    with torch.no_grad():
        for block in model.xattn.values():
            block.attn_gate.fill_(1.0)
            block.ff_gate.fill_(1.0)
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    return path, model


@pytest.fixture
def data(tmp_path):
    t = np.arange(SR * 3) / SR
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    sf.write(tmp_path / "b.flac", 0.3 * np.sin(2 * np.pi * 880 * np.arange(SR * 12) / SR), SR)  # 2 windows
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    lines = [
        {"id": "q1", "audio": "a.wav", "prompt": "How many tones?", "answer": "1"},
        {
            "id": "q2",
            "audio": "b.flac",
            "prompt": "Which is higher?",
            "answer": "second",
            "choices": ["first", "second"],
        },
        {"id": "q3", "audio": "broken.wav", "prompt": "What is this?", "answer": "x"},
        {"id": "q4", "audio": "a.wav", "prompt": "Again?", "answer": "1", "start": 1.0, "end": 2.5},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n"
    (tmp_path / "manifest.jsonl").write_text(text)
    return tmp_path


def _infer(*args):
    return subprocess.run([sys.executable, "-m", "af2", "infer", *map(str, args)], capture_output=True, text=True)


def test_manifest_run_is_batched_resumable_and_reports_bad_files(saved_model, data):
    model_dir, model = saved_model
    out = data / "preds.jsonl"
    run = _infer(
        "--model",
        model_dir,
        "--input",
        data / "manifest.jsonl",
        "--output",
        out,
        "--batch-size",
        2,
        "--max-new-tokens",
        5,
        "--device",
        "cpu",
    )
    assert run.returncode == 1, run.stderr  # partial: one unreadable file, one bad line
    preds = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == ["q1", "q2", "q4"]
    errors = [json.loads(x) for x in (data / "preds.jsonl.errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["q3"]
    assert "bad manifest line" in run.stderr and "unreadable 1" in run.stderr
    # The answers are model.generate's (same prompt formatting, same windowing).
    from af2.audio.io import read_audio

    want = model.generate(
        [read_audio(data / "b.flac")], ["Which is higher?\nChoose one:\n(A) first\n(B) second"], max_new_tokens=5
    )
    assert next(p for p in preds if p["id"] == "q2")["prediction"] == want[0].strip()
    # Rerun: nothing is answered twice; a torn last line from a killed run is repaired.
    with open(out, "a") as f:
        f.write('{"id": "q9", "predic')
    again = _infer("--model", model_dir, "--input", data / "manifest.jsonl", "--output", out, "--device", "cpu")
    assert again.returncode == 1, again.stderr  # the broken file is still unreadable
    assert "answered 0, already done 3" in again.stderr
    assert sorted(json.loads(x)["id"] for x in out.read_text().splitlines()) == ["q1", "q2", "q4"]


def test_audio_files_and_prompt(saved_model, data):
    model_dir, _ = saved_model
    run = _infer(
        "--model",
        model_dir,
        "--audio",
        data / "a.wav",
        data / "broken.wav",
        "--prompt",
        "What is it?",
        "--max-new-tokens",
        3,
    )
    assert run.returncode == 1  # one file unreadable
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith(str(data / "a.wav") + "\t")
    assert "unreadable" in lines[1] and "broken.wav" in run.stderr


def test_usage_errors(saved_model, data):
    model_dir, _ = saved_model
    run = _infer("--model", model_dir, "--audio", data / "a.wav")
    assert run.returncode == 2 and "--audio needs --prompt" in run.stderr
    run = _infer("--model", model_dir, "--audio", data / "x.wav", "--prompt", "?")
    assert run.returncode == 2 and "argument --audio: no such file" in run.stderr
