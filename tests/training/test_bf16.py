"""bf16, the GPU default (``deepspeed.precision: auto``), on the CPU: DeepSpeed casts parameters
but not buffers, so the frozen HTSAT's BatchNorm must get bf16 running statistics too."""
from __future__ import annotations

import json

from tests.training.conftest import run


def test_bf16_stage_runs(stage_config, tmp_path):
    cfg = stage_config("bf16", train={"max_steps": 2, "progress": False}, deepspeed={"precision": "bf16"})
    run(["-m", "training.train", "--config", str(cfg)])
    summary = json.loads((tmp_path / "bf16" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["frozen_unchanged"] and summary["skipped_steps"] == 0
    assert summary["final_loss"] == summary["final_loss"]
