"""bf16, the GPU default (``deepspeed.precision: auto``), on the CPU: DeepSpeed casts parameters
but not buffers, so the frozen HTSAT's BatchNorm must get bf16 running statistics too; a bf16
run resumes exactly."""

from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import load_file

from tests.training.conftest import run


def test_bf16_stage_runs(stage_config, tmp_path):
    cfg = stage_config("bf16", train={"max_steps": 2, "progress": False}, deepspeed={"precision": "bf16"})
    run(["-m", "training.train", "--config", str(cfg)])
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["frozen_unchanged"] and summary["skipped_steps"] == 0
    assert summary["final_loss"] == summary["final_loss"]


def test_bf16_resume_is_exact(stage_config, tmp_path):
    # DeepSpeed's bf16 ZeRO-2 optimizer states load through the weights-only reader
    cfg = stage_config(
        "bf16r", train={"max_steps": 2, "checkpoint_every": 1, "progress": False}, deepspeed={"precision": "bf16"}
    )
    out = tmp_path / "bf16r"
    run(["-m", "training.train", "--config", str(cfg)])
    before = load_file(str(out / "model" / "model.safetensors"))
    assert any(t.dtype == torch.bfloat16 for t in before.values())
    shutil.rmtree(out / "checkpoints" / "final")
    shutil.rmtree(out / "model")
    run(["-m", "training.train", "--config", str(cfg), "--resume"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_at"] == 1 and summary["steps"] == 2
    after = load_file(str(out / "model" / "model.safetensors"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
