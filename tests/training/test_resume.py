"""Atomic checkpoints and exact resume after SIGKILL; non-finite losses are skipped and counted."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.training.conftest import ROOT, env, run
from training.checkpoint import find_latest


def _weights(out) -> dict:
    return load_file(str(out / "model" / "model.safetensors"))


def test_sigkill_then_resume_matches_uninterrupted_run(stage_config, tmp_path):
    sections = dict(train={"max_steps": 24, "checkpoint_every": 3, "progress": False})
    ref = stage_config("ref", **sections)
    run(["-m", "training.train", "--config", str(ref)])

    cfg = stage_config("killed", **sections)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "training.train", "--config", str(cfg)], cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "checkpoints" / "step-00000006").is_dir():
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    found = find_latest(out / "checkpoints")
    assert found is not None and found.name != "final"
    killed_at = json.loads((found / "trainer_state.json").read_text())["step"]
    assert 6 <= killed_at < 24

    run(["-m", "training.train", "--config", str(cfg), "--resume"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_at"] == killed_at and summary["steps"] == 24
    a, b = _weights(tmp_path / "ref"), _weights(out)
    assert a.keys() == b.keys()
    for key in a:  # CPU fp32: bitwise
        assert torch.equal(a[key], b[key]), key
    # the resumed run saw the same data and losses as the uninterrupted one
    lines = lambda p: {r["step"]: r["loss"] for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines())}
    ref_loss, res_loss = lines(tmp_path / "ref"), lines(out)
    assert all(res_loss[s] == ref_loss[s] for s in range(killed_at + 1, 25))


def test_half_written_checkpoint_is_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    good = root / "step-00000002"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text(json.dumps({"step": 2}))
    (root / "step-00000004").mkdir()  # no trainer_state.json: incomplete
    (root / ".staging" / "step-00000006").mkdir(parents=True)
    (root / "latest").write_text("step-00000004")
    assert find_latest(root) == good
    assert find_latest(tmp_path / "none") is None


def test_nonfinite_steps_are_skipped_then_stop(stage_config, tmp_path):
    ok = stage_config("nan_ok", debug={"nan_loss_steps": [2]}, train={"max_steps": 3, "max_nonfinite": 2,
                                                                     "progress": False})
    run(["-m", "training.train", "--config", str(ok)])
    summary = json.loads((tmp_path / "nan_ok" / "summary.json").read_text())
    assert summary["skipped_steps"] == 1 and summary["steps"] == 3
    bad = stage_config("nan_bad", debug={"nan_loss_steps": [1, 2]}, train={"max_nonfinite": 1, "progress": False})
    proc = run(["-m", "training.train", "--config", str(bad)], check=False)
    assert proc.returncode != 0
    assert "NonFiniteLossError" in proc.stderr and "train.max_nonfinite=1" in proc.stderr


@pytest.mark.parametrize("value", ["max_windows_per_batch=1"])
def test_bad_budget_fails_before_training(stage_config, tmp_path, value):
    proc = run(["-m", "training.train", "--config", str(stage_config("bad")), "--set", f"data.{value}"], check=False)
    assert proc.returncode != 0 and "data.max_windows_per_batch" in proc.stderr
    assert not (tmp_path / "bad").exists()
