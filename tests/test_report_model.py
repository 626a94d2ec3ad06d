"""benchmarks/report.py: the model section (--smoke: tiny preset, bf16, on the CPU here) runs end to
end, and the results JSON is written row by row (a killed or failing section keeps what it finished;
separate processes continue one file with --into)."""

from __future__ import annotations

import json

import pytest
import torch

report = pytest.importorskip("benchmarks.report")
model_report = pytest.importorskip("benchmarks.model_report")


def _only_json(tmp_path):
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    return json.loads(files[0].read_text())


def test_meta_build_then_materialise_keeps_ties_and_buffers():
    model = model_report.build_model("tiny", torch.device("cpu"), torch.bfloat16)
    assert model.clap.text is None  # text tower left out
    assert not any(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert model.llm.lm_head.weight is model.llm.get_input_embeddings().weight  # tied stays tied
    block = next(iter(model.xattn.values()))
    assert float(block.attn_gate.detach()) == 0.5 and float(block.ff_gate.detach()) == 0.5
    idx = next(b for n, b in model.named_buffers() if n.endswith("relative_position_index"))
    assert idx.dtype == torch.int64 and int(idx.max()) > 0  # real buffers, not empty memory


def test_model_section_smoke_writes_rows(tmp_path):
    assert report.main(["--ops", "model", "--smoke", "--out", str(tmp_path)]) == 0
    data = _only_json(tmp_path)
    assert data["sections"] == ["model"] and data["sections_done"] == ["model"]
    assert "[smoke run]" in data["note"]
    rows = data["results"]
    assert [(r["mode"], r["shape"].get("source")) for r in rows] == [
        ("train fwd+bwd", "windows"),
        ("train fwd+bwd", "dense"),
        ("inference", None),
    ]
    for r in rows[:2]:
        assert r["model"] == "tiny" and r["ms"] > 0 and r["baseline_ms"] > 0 and r["ratio"] > 0
        assert r["shape"]["trainable_params"] > 0
    inf = rows[2]
    assert inf["shape"]["W"] == 3 and inf["audio_ms"] > 0 and inf["prefill_ms"] > 0
    assert 1 <= inf["shape"]["new_tokens"] <= 4 and "ms_per_token" in inf
    assert inf["same_tokens"] is True and inf["baseline_ms"] > 0 and inf["ratio"] > 0  # generate vs the earlier loop


def test_budget_and_into_continue_one_file(tmp_path):
    path = tmp_path / "one.json"
    assert report.main(["--ops", "model", "--smoke", "--budget-s", "0", "--into", str(path)]) == 0
    assert report.main(["--ops", "contrastive", "--smoke", "--budget-s", "0", "--into", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["sections"] == ["model", "contrastive"] and data["sections_done"] == ["model", "contrastive"]
    assert data["results"] and all(r.get("skipped") == "time budget spent" for r in data["results"])


def test_rows_survive_a_failing_section(tmp_path, monkeypatch):
    def broken(device, ceil, quick, smoke=False):
        yield {
            "op": "x",
            "mode": "fwd",
            "dtype": "float32",
            "shape": {"B": 1},
            "ms": 1.0,
            "target": None,
            "achieved": "first row",
        }
        raise RuntimeError("boom")

    monkeypatch.setitem(report.OPS, "rope", broken)
    monkeypatch.setattr(report, "ceilings", lambda device, quick: {"copy_GBps": 1.0})
    assert report.main(["--ops", "rope", "--out", str(tmp_path)]) == 1
    data = _only_json(tmp_path)
    assert data["sections_done"] == []
    assert data["results"][0]["achieved"] == "first row"
    assert data["results"][1]["error"] == "RuntimeError: boom"


def test_smoke_is_refused_for_op_sections_without_it():
    with pytest.raises(SystemExit):
        report.main(["--ops", "media_attn", "--smoke"])
