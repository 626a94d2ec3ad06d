"""ZeRO-3 (optional in every stage): a 2-stage curriculum (AF-CLAP, then pretrain) initialises
with AF2's one-element parameters (AF-CLAP's logit scale, the xattn gates), trains, hands the
weights on, exports full parameters, and resumes exactly from a ZeRO-3 checkpoint."""

from __future__ import annotations

import json
import shutil

import torch
import yaml
from safetensors.torch import load_file

from tests.training.conftest import ROOT, run

CONFIGS = ROOT / "training" / "configs"


def test_zero3_two_stages_resume_and_export(tmp_path, synth):
    spec = {
        "output_dir": str(tmp_path / "cur"),
        "overrides": {
            "data": {
                "sources": [{"manifest": str(synth)}],
                "num_workers": 0,
                "max_batch_size": 2,
                "max_windows": 3,
                "max_windows_per_batch": 6,
            },
            "train": {"progress": False, "checkpoint_every": 1},
            "optim": {"warmup_steps": 1, "lr": 1e-3},
            "deepspeed": {"zero_stage": 3},
        },
        "stages": [
            {"config": str(CONFIGS / "clap.yaml"), "overrides": {"clap": {"batch_size": 2}, "train": {"max_steps": 2}}},
            {"config": str(CONFIGS / "pretrain.yaml"), "overrides": {"train": {"max_steps": 3}}},
        ],
    }
    path = tmp_path / "cur.yaml"
    path.write_text(yaml.safe_dump(spec))
    run(["-m", "training.curriculum", "--config", str(path)], timeout=300)
    clap_dir, pre_dir = tmp_path / "cur" / "0-clap", tmp_path / "cur" / "1-pretrain"
    init = load_file(str(clap_dir / "model" / "model.safetensors"))
    for d, steps in ((clap_dir, 2), (pre_dir, 3)):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["steps"] == steps and summary["frozen_unchanged"] and summary["skipped_steps"] == 0
        assert summary["final_loss"] == summary["final_loss"]  # finite
        assert all(".fusion_model." in n or ".mel_conv2d." in n for n in summary["trainable_unchanged"])
        ds = json.loads((d / "checkpoints" / "final" / "trainer_state.json").read_text())
        assert ds["step"] == steps
    # the one-element logit scale trained under ZeRO-3 and is exported with its shape
    assert init["clap.logit_scale"].shape == (1,)
    pre = load_file(str(pre_dir / "model" / "model.safetensors"))
    assert init.keys() == pre.keys() and all(init[k].shape == pre[k].shape for k in init)
    # hand-off: the pretrain stage started from AF-CLAP's weights and kept AF-CLAP frozen
    assert all(torch.equal(init[k], pre[k]) for k in init if k.startswith("clap."))
    assert not all(torch.equal(init[k], pre[k]) for k in init if k.startswith("xattn."))

    # resume the second stage from its step-2 ZeRO-3 checkpoint: same final weights, bitwise
    shutil.rmtree(pre_dir / "checkpoints" / "final")
    shutil.rmtree(pre_dir / "model")
    (pre_dir / "summary.json").unlink()
    (pre_dir / "checkpoints" / "latest").write_text("step-00000002")
    run(["-m", "training.curriculum", "--config", str(path), "--resume"], timeout=300)
    summary = json.loads((pre_dir / "summary.json").read_text())
    assert summary["resumed_at"] == 2 and summary["steps"] == 3
    resumed = load_file(str(pre_dir / "model" / "model.safetensors"))
    for key in pre:
        assert torch.equal(pre[key], resumed[key]), key
    steps = [json.loads(line)["step"] for line in (pre_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # no step logged twice after the resume
    assert json.loads((clap_dir / "summary.json").read_text())["steps"] == 2  # finished stage skipped
