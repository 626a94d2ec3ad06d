"""Fixtures of the command-line tests: ``af2(...)`` runs ``af2.cli.main`` in this process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.llm.conftest import serve  # noqa: F401  (the fixture: one ScriptedServer per test)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def af2(capsys):
    """``af2("synth", "--n", "3", ...)`` -> Result(exit status, stdout, stderr)."""
    from af2.cli import main

    def call(*argv) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def bad_input(result: Result, *words: str) -> None:
    """Exit status 2 and one line on stderr (``PROG: error: ...``) that holds every word."""
    lines = result.err.strip().splitlines()
    assert result.code == 2, result
    assert len(lines) == 1 and ": error: " in lines[0], result.err
    for word in words:
        assert word in lines[0], (word, lines[0])


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to show that nothing was written or lost)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path
