"""A job killed (SIGKILL) in the middle resumes: every input exactly once, no reply paid twice."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from af2.data.manifest import load_manifest
from tests.llm.conftest import kill_when_requested, read_jsonl, run_cli
from tests.llm.fake_llm import well_behaved
from tests.llm.test_cli import write_input

N, HELD = 16, 6  # records; requests answered before the server starts holding them


def source_ids(lines: list[dict]) -> Counter:
    return Counter(line["provenance"]["source_id"] for line in lines)


@pytest.mark.parametrize(
    "command, extra, per_record",
    [
        ("paraphrase", ["--m", "3"], 1),
        ("qa", ["--per-record", "2"], 2),  # two lines per record, written together
    ],
)
def test_kill_in_the_middle_then_resume(serve, tmp_path, command, extra, per_record):
    records = [
        {
            "id": f"k{i}",
            "audio": f"clips/{i}.wav",
            "caption": f"A dog barks then a car passes, take {i}",
            "duration": 10.0,
        }
        for i in range(N)
    ]
    inp, out = write_input(tmp_path, "in.jsonl", records), tmp_path / "out" / f"{command}.jsonl"
    server = serve(well_behaved)
    server.hang_after = HELD
    args = [*extra, "--concurrency", "2"]
    proc = run_cli(command, inp, out, server, *args, wait=False)
    # Both workers are blocked on held requests: every answered reply has been handled.
    kill_when_requested(proc, server, HELD + 2)
    killed = read_jsonl(out)
    assert source_ids(killed) == Counter({f"k{i}": per_record for i in range(N) if f"k{i}" in source_ids(killed)})
    assert len(source_ids(killed)) == HELD < N  # it really stopped in the middle
    with out.open("ab") as f:  # and its last write was torn (as after a power cut)
        f.write(b'{"id": "k999", "provenance": {"source_')

    server.release()
    resumed = run_cli(command, inp, out, server, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "torn last line" in resumed.stderr
    lines = read_jsonl(out)
    assert source_ids(lines) == Counter({f"k{i}": per_record for i in range(N)})  # none lost, none twice
    assert not Path(f"{out}.rejects.jsonl").read_text()
    assert len(server.answered) == N and len(set(server.answered)) == N  # no reply was bought twice
    assert server.count == N + 2  # only the two held (never answered) requests were sent again
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["records"]["already_done"] == HELD and report["usage"]["requests"] == N - HELD
    if command == "qa":
        assert len(load_manifest(out, strict=True).samples) == N * per_record
