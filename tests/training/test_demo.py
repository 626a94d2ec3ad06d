"""``python -m training.demo --quick`` end to end: data, 4 DeepSpeed stages, evaluation, report.

The quick run is far too small to learn anything, so this checks the plumbing and that the
report files are well-formed (numbers in range, every stage and skill present), not accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["clap", "pretrain", "sft", "long"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "training.demo", "--quick", "--out", str(out), "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "phase 5/5" in proc.stdout  # progress is printed per phase
    return out


def test_report_json(demo):
    report = json.loads((demo / "report" / "report.json").read_text())
    assert report["mode"] == "quick" and report["seed"] == 3
    assert list(report["stages"]) == STAGES
    for stage in STAGES:
        s = report["stages"][stage]
        assert s["steps"] >= 1 and s["final_loss"] == s["final_loss"]  # finite
        assert len(report["losses"][stage]) == s["steps"]
    n = report["evaluation"]["n_questions"]
    assert n > 0
    for key in ("untrained", "trained", "trained_shuffled_audio"):
        by_skill = report["accuracy"][key]["by_skill"]
        assert by_skill["all"]["n"] + report["accuracy"][key]["long_audio"].get("n", 0) == n
        for row in by_skill.values():
            assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 < row["chance"] < 1.0
    table = report["accuracy_table"]
    # the quick run's long scenes last 30-32 s: the long row and its one length bin
    assert [r["skill"] for r in table[-2:]] == ["long_audio (long scenes)", "long_audio 30-60 s"]
    by_length = report["accuracy"]["trained"]["long_audio_by_length"]
    assert list(by_length) == ["30-60 s"]
    assert by_length["30-60 s"]["n"] == report["accuracy"]["trained"]["long_audio"]["n"]
    for row in table:
        assert {"skill", "n", "chance", "untrained", "trained", "trained_shuffled_audio"} <= set(row)
    assert report["timings"]["total_s"] > 0
    assert {"data_s", "train_s", "eval_untrained_s", "eval_trained_s"} <= set(report["timings"])


def test_plots_and_markdown(demo):
    rep = demo / "report"
    for name in [f"loss_{s}.png" for s in STAGES] + ["loss_all.png"]:
        assert (rep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    md = (rep / "report.md").read_text()
    assert "| skill |" in md and "| counting |" in md and "| all |" in md
    assert "| long_audio 30-60 s |" in md and "| long.summary |" in md
    preds = json.loads((rep / "predictions.json").read_text())
    assert set(preds) == {"untrained", "trained", "trained_shuffled_audio"}


def test_stage_outputs_chained(demo):
    for k, stage in enumerate(STAGES):
        run = demo / "runs" / f"{k}-{stage}"
        assert (run / "summary.json").is_file() and (run / "model" / "model.safetensors").is_file()
    cfgs = json.loads((demo / "report" / "report.json").read_text())["stage_configs"]
    assert cfgs[0]["init_from"] is None
    assert [c["init_from"] for c in cfgs[1:]] == [c["output"]["dir"] for c in cfgs[:-1]]
    # the audio transformation's input norm is initialised from the data once, in pretrain (a later
    # stage would overwrite what pretrain learned); the frozen-HTSAT stages cache its features
    assert [c["train"]["init_audio_norm_from_data"] for c in cfgs] == [False, True, False, False]
    assert [c["train"]["feature_cache_mb"] > 0 for c in cfgs] == [False, True, False, True]
    assert all(c["train"]["freeze_batchnorm"] for c in cfgs)
    pretrain = json.loads((demo / "runs" / "1-pretrain" / "summary.json").read_text())
    assert pretrain["audio_norm_init"]["tokens"] > 0 and pretrain["feature_cache"]["misses"] > 0
