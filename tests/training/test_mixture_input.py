"""A stage's mixture refuses a source manifest with a bad line, or a missing one, with an
``InputError`` naming the source and the line (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest

from af2.errors import InputError
from training.data import write_mixture


def test_a_bad_source_manifest_line_is_an_input_error_naming_its_line(tmp_path):
    good = {"audio": "a.wav", "prompt": "p", "answer": "a"}
    (tmp_path / "m.jsonl").write_bytes(json.dumps(good).encode() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"data.sources\[0\].manifest .*line 2: not valid UTF-8"):
        write_mixture([{"manifest": str(tmp_path / "m.jsonl")}], tmp_path / "mix.jsonl", seed=0)


def test_a_missing_source_manifest_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="none.jsonl: no such file"):
        write_mixture([{"manifest": str(tmp_path / "none.jsonl")}], tmp_path / "mix.jsonl", seed=0)
