"""Fixtures of the evaluation tests: the LLM tests' scripted server (``serve``) and small files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llm.conftest import serve  # noqa: F401  (the fixture: one ScriptedServer per test)

SKILLED = ["temporal_reasoning", "counting", "general_reasoning"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def manifest_rows(n: int) -> list[dict]:
    """``n`` reference samples r0..r{n-1}, skills in rotation, the last one untagged."""
    rows = []
    for i in range(n):
        row = {
            "id": f"r{i}",
            "audio": f"clips/{i}.wav",
            "prompt": f"What happens in clip {i}?",
            "answer": f"event {i} happens",
        }
        if i < n - 1:
            row["skill"] = SKILLED[i % len(SKILLED)]
        rows.append(row)
    return rows


@pytest.fixture
def refs(tmp_path) -> Path:
    return write_jsonl(tmp_path / "in" / "manifest.jsonl", manifest_rows(6))
