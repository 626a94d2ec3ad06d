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
from training.checkpoint import candidates


def _weights(out) -> dict:
    return load_file(str(out / "model" / "model.safetensors"))


def test_sigkill_then_resume_matches_uninterrupted_run(stage_config, tmp_path):
    sections = dict(train={"max_steps": 24, "checkpoint_every": 3, "progress": False})
    ref = stage_config("ref", **sections)
    run(["-m", "training.train", "--config", str(ref)])

    cfg = stage_config("killed", **sections)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.train", "--config", str(cfg)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
    found = (candidates(out / "checkpoints") or [None])[0]
    assert found is not None and found.name != "final"
    killed_at = json.loads((found / "trainer_state.json").read_text())["step"]
    # a kill between the rename of step-6 and the update of `latest` resumes from step 3: fine
    assert 3 <= killed_at < 24

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
    # steps logged after the resumed checkpoint (before the kill) were cut: each step once
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 25))


def test_half_written_checkpoint_is_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    good = root / "step-00000002"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text(json.dumps({"step": 2}))
    (root / "step-00000004").mkdir()  # no trainer_state.json: incomplete
    (root / ".staging" / "step-00000006").mkdir(parents=True)
    (root / "latest").write_text("step-00000004")
    assert candidates(root) == [good]
    assert candidates(tmp_path / "none") == []


def test_nonfinite_steps_are_skipped_then_stop(stage_config, tmp_path):
    ok = stage_config(
        "nan_ok", debug={"nan_loss_steps": [2]}, train={"max_steps": 3, "max_nonfinite": 2, "progress": False}
    )
    run(["-m", "training.train", "--config", str(ok)])
    summary = json.loads((tmp_path / "nan_ok" / "summary.json").read_text())
    assert summary["skipped_steps"] == 1 and summary["steps"] == 3
    bad = stage_config("nan_bad", debug={"nan_loss_steps": [1, 2]}, train={"max_nonfinite": 1, "progress": False})
    proc = run(["-m", "training.train", "--config", str(bad)], check=False)
    assert proc.returncode != 0
    assert "NonFiniteLossError" in proc.stderr and "train.max_nonfinite=1" in proc.stderr


def test_nonfinite_micro_batch_or_gradient_skips_the_whole_step(stage_config, tmp_path):
    # grad_accum 2: step 2 has one NaN micro-batch (the other is finite), step 3 finite losses and
    # NaN gradients. Neither may update anything: the weights equal those after step 1.
    optim = {"lr": 1e-3, "warmup_steps": 0, "schedule": "constant"}
    bad = stage_config(
        "nan_micro",
        optim=optim,
        train={"max_steps": 3, "grad_accum": 2, "progress": False},
        debug={"nan_loss_steps": [2], "nan_micro_batch": 1, "nan_grad_steps": [3]},
    )
    ref = stage_config("one_step", optim=optim, train={"max_steps": 1, "grad_accum": 2, "progress": False})
    run(["-m", "training.train", "--config", str(bad)])
    run(["-m", "training.train", "--config", str(ref)])
    summary = json.loads((tmp_path / "nan_micro" / "summary.json").read_text())
    assert summary["skipped_steps"] == 2 and summary["steps"] == 3
    records = [json.loads(line) for line in (tmp_path / "nan_micro" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in records] == [0, 1, 2]
    assert all(r["loss"] == r["loss"] for r in records)  # the finite micro-batch's loss is reported
    a, b = _weights(tmp_path / "nan_micro"), _weights(tmp_path / "one_step")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_metrics_truncated_to_resumed_step(tmp_path):
    from training.metrics import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    truncate_metrics(path, 2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    truncate_metrics(path, 0)
    assert path.read_text() == ""


def test_unchanged_trainable_parameters_are_reported():
    from training.metrics import unexpected_unchanged

    names = [
        "clap.audio.audio_encoder.patch_embed.fusion_model.local_att.0.weight",
        "clap.audio.audio_encoder.patch_embed.mel_conv2d.weight",
        "xattn.0.attn_gate",
    ]
    assert unexpected_unchanged(names) == ["xattn.0.attn_gate"]


@pytest.mark.parametrize("value", ["max_windows_per_batch=1"])
def test_bad_budget_fails_before_training(stage_config, tmp_path, value):
    proc = run(["-m", "training.train", "--config", str(stage_config("bad")), "--set", f"data.{value}"], check=False)
    assert proc.returncode != 0 and "data.max_windows_per_batch" in proc.stderr
    assert not (tmp_path / "bad").exists()
