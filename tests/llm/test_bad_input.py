"""Bad input lines never crash a job: a line that is not UTF-8, not JSON, not an object or a
record with fields of the wrong type is rejected with its line number; the other records are
done. A missing input or a directory is exit 2 with one message, no traceback."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from af2.llm import load_template
from af2.llm.jobs import Job
from af2.llm.pipeline import Outcome, Pipeline
from tests.eval.conftest import manifest_rows, write_jsonl
from tests.llm.conftest import ROOT, make_client, read_jsonl, run_cli, run_module
from tests.llm.fake_llm import well_behaved
from tests.llm.test_cli import CAPTIONS, write_input

BAD_LINES = b"\xff\xfe broken\n{not json\n[1, 2]\n" + b"9" * 5000 + b'\n"\\ud800"\n'


def with_bad_lines(path: Path) -> Path:
    """``path`` with the bad lines inserted after its first line (lines 2 to 6)."""
    first, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(first + b"\n" + BAD_LINES + rest)
    return path


def run_score(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "af2.eval", "score", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_llm_job_rejects_bad_lines_with_their_numbers(serve, tmp_path):
    server = serve(well_behaved)
    inp = with_bad_lines(write_input(tmp_path, "captions.jsonl", CAPTIONS))
    out = tmp_path / "out" / "para.jsonl"
    result = run_cli("paraphrase", inp, out, server, "--m", "2")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and len(read_jsonl(out)) == 3
    rejects = {r["input_line"]: r["reasons"][0] for r in read_jsonl(Path(f"{out}.rejects.jsonl"))}
    assert sorted(rejects) == [2, 3, 4, 5, 6]
    assert "not valid UTF-8" in rejects[2] and "invalid JSON" in rejects[3]
    assert "expected a JSON object" in rejects[4] and "invalid JSON" in rejects[5] and "surrogate" in rejects[6]
    assert run_cli("paraphrase", inp, out, server, "--m", "2").returncode == 0  # a rerun: all done


class NaiveCaptions(Pipeline):
    """A generator that trusts its input's types (``caption.strip()``)."""

    name = "naive"

    def __init__(self, client):
        self.args, self.client = argparse.Namespace(), client
        self.template = load_template("af2.data.llm", "paraphrase")

    def process(self, record):
        return Outcome([{"id": record.source_id, "caption": record.data["caption"].strip()}])


def test_a_record_of_the_wrong_types_rejects_only_itself(serve, tmp_path):
    inp = write_input(
        tmp_path,
        "captions.jsonl",
        [{"id": "a", "caption": "x"}, {"id": "b", "caption": 5}, {"id": "c"}, {"id": "d", "caption": "y"}],
    )
    out = tmp_path / "out.jsonl"
    stats = Job(NaiveCaptions(make_client(serve(well_behaved))), inp, out, progress=False).run()
    assert (stats.ok, stats.rejected, stats.failed) == (2, 2, 0)
    assert [line["id"] for line in read_jsonl(out)] == ["a", "d"]
    rejects = {r["input_line"]: r["reasons"][0] for r in read_jsonl(Path(f"{out}.rejects.jsonl"))}
    assert "malformed record (AttributeError" in rejects[2] and "malformed record (KeyError" in rejects[3]


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_missing_input_exits_2_with_one_message(serve, tmp_path, make):
    server = serve(well_behaved)
    inp = tmp_path / "in.jsonl"
    if make == "directory":
        inp.mkdir()
    out = tmp_path / "out" / "para.jsonl"
    result = run_cli("paraphrase", inp, out, server)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(inp) in result.stderr and server.count == 0
    assert not Path(f"{out}.report.json").exists()


def test_score_and_judge_read_bad_prediction_lines_per_line(serve, tmp_path):
    ref = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(3))
    pred = with_bad_lines(
        write_jsonl(tmp_path / "preds.jsonl", [{"id": f"r{i}", "prediction": f"event {i} happens"} for i in range(3)])
    )
    score = run_score("--pred", str(pred), "--ref", str(ref))
    # exit status 1: scored, with unreadable lines skipped (and named)
    assert score.returncode == 1 and "Traceback" not in score.stderr, score.stderr
    assert "line 2: input: not valid UTF-8" in score.stderr and "line 6" in score.stderr

    from tests.eval.fake_judge import fair_judge

    server = serve(fair_judge)
    out = tmp_path / "judged.jsonl"
    judge = run_module(["af2.eval", "judge", "--pred", str(pred), "--ref", str(ref), "--out", str(out)], server)
    assert judge.returncode == 0 and "Traceback" not in judge.stderr, judge.stderr
    assert sorted(line["id"] for line in read_jsonl(out)) == ["r0", "r1", "r2"]
    assert sorted(r["input_line"] for r in read_jsonl(Path(f"{out}.rejects.jsonl"))) == [2, 3, 4, 5, 6]
    # A damaged line in the judged file is left out of the summary, never a crash.
    with open(out, "ab") as f:
        f.write(b'\xff{"id": 3}\n{"id": "r0", "score": "ten"}\n')
    again = run_module(["af2.eval", "judge", "--pred", str(pred), "--ref", str(ref), "--out", str(out)], server)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr


def test_score_and_judge_with_a_missing_file_exit_2(serve, tmp_path):
    ref = write_jsonl(tmp_path / "manifest.jsonl", manifest_rows(2))
    results = [
        run_score("--pred", str(tmp_path / "none.jsonl"), "--ref", str(ref)),
        run_score("--pred", str(ref), "--ref", str(tmp_path)),
        run_module(
            [
                "af2.eval",
                "judge",
                "--pred",
                str(tmp_path / "none.jsonl"),
                "--ref",
                str(ref),
                "--out",
                str(tmp_path / "j.jsonl"),
            ],
            serve(well_behaved),
        ),
    ]
    for result in results:
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert str(tmp_path) in result.stderr
