"""benchmarks/report.py's contrastive section runs (CPU, --smoke shapes) and writes well-formed rows;
the Inf-CL comparison degrades to a note where inf_cl cannot run."""

from __future__ import annotations

import json

import pytest
import torch

report = pytest.importorskip("benchmarks.report")


def test_contrastive_smoke_rows_on_cpu():
    rows = report.contrastive_results(torch.device("cpu"), {}, quick=True, smoke=True)
    vs_eager, infcl, probe = rows
    assert vs_eager["baseline"] == "eager full logits" and vs_eager["ms"] > 0 and vs_eager["baseline_ms"] > 0
    assert vs_eager["shape"] == {"B": 64, "M": 2, "N": 3, "D": 64}
    assert infcl["shape"]["M"] == 1 and infcl["shape"]["N"] == 0 and infcl["baseline"] is None
    assert "Inf-CL comparison skipped" in infcl["note"]
    assert probe["probe"].startswith("loss-side peak memory") and probe["shape"]["B"] == 256
    json.dumps(rows)  # every row is JSON


def test_smoke_is_refused_for_other_ops():
    with pytest.raises(SystemExit):
        report.main(["--ops", "rope", "--smoke"])
