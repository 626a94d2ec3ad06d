"""The shared argument types: each refuses a bad value with a reason, before anything runs."""

from __future__ import annotations

import argparse
import os

import pytest

from af2.cli import args as A


def refused(kind, value: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        kind(str(value))


def test_input_file(tmp_path):
    good = tmp_path / "in.jsonl"
    good.write_text("{}\n")
    assert A.input_file(str(good)) == good
    refused(A.input_file, tmp_path / "missing.jsonl", "no such file")
    refused(A.input_file, tmp_path, "is a directory, expected a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_input_file_unreadable(tmp_path):
    locked = tmp_path / "locked.jsonl"
    locked.write_text("{}\n")
    locked.chmod(0)
    refused(A.input_file, locked, "cannot read")


def test_input_dir(tmp_path):
    assert A.input_dir(str(tmp_path)) == tmp_path
    refused(A.input_dir, tmp_path / "nope", "no such directory")
    (tmp_path / "f").write_text("")
    refused(A.input_dir, tmp_path / "f", "is not a directory")


def test_output_file(tmp_path):
    assert A.output_file(str(tmp_path / "out.jsonl")) == tmp_path / "out.jsonl"
    refused(A.output_file, tmp_path / "missing" / "out.jsonl", "does not exist")
    refused(A.output_file, tmp_path, "is a directory")
    assert not (tmp_path / "missing").exists()


def test_output_dir(tmp_path):
    assert A.output_dir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"  # created later, parents too
    (tmp_path / "file").write_text("")
    refused(A.output_dir, tmp_path / "file", "exists and is not a directory")
    refused(A.output_dir, tmp_path / "file" / "sub", "is a file")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (A.positive_int, {"1": 1, "64": 64}, {"0": ">= 1", "-1": ">= 1", "x": "an integer", "1.5": "an integer"}),
        (A.nonnegative_int, {"0": 0, "7": 7}, {"-5": ">= 0", "": "an integer"}),
        (A.positive_float, {"0.5": 0.5, "3": 3.0}, {"0": "> 0", "-2": ">= 0", "nan": ">= 0", "inf": "finite"}),
    ],
)
def test_numbers(kind, good, bad):
    for text, value in good.items():
        assert kind(text) == value
    for text, reason in bad.items():
        refused(kind, text, reason)


def test_override_and_device():
    assert A.override("train.max_steps=5") == "train.max_steps=5"
    assert A.override("data.sources=[{manifest: m.jsonl}]").startswith("data.sources=")
    for bad in ("train.max_steps", "=5", "train..x=1"):
        refused(A.override, bad, "KEY.SUB=VALUE")
    assert [A._device(d) for d in ("cpu", "cuda", "cuda:1")] == ["cpu", "cuda", "cuda:1"]
    for bad in ("gpu", "cuda:x", "cpu:0"):
        refused(A._device, bad, "cpu, cuda or cuda:N")


def test_old_flag_names_only_for_old_entry_points():
    assert A.flags("--input", "--in", legacy=True) == ("--input", "--in")
    assert A.flags("--input", "--in", legacy=False) == ("--input",)
