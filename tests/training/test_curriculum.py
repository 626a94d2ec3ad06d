"""The curriculum end to end on tiny configs: stages in order, weights handed on, frozen
parameters unchanged bit for bit and trainable ones changed in every stage."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.training.conftest import ROOT, run

CONFIGS = ROOT / "training" / "configs"


def test_curriculum_end_to_end(tmp_path, synth):
    spec = {
        "output_dir": str(tmp_path / "cur"),
        "overrides": {
            "data": {"sources": [{"manifest": str(synth)}], "num_workers": 0, "max_batch_size": 2},
            "train": {"max_steps": 2, "progress": False, "checkpoint_every": 1},
            "optim": {"warmup_steps": 1, "lr": 1e-3},
        },
        "stages": [
            {"config": str(CONFIGS / "clap.yaml"), "overrides": {"clap": {"batch_size": 4}}},
            {"config": str(CONFIGS / "pretrain.yaml")},
            {
                "config": str(CONFIGS / "sft.yaml"),
                "overrides": {"data": {"max_windows": 4, "max_windows_per_batch": 8}},
            },
            {
                "config": str(CONFIGS / "long.yaml"),
                "overrides": {
                    "data": {
                        "max_windows": 4,
                        "max_windows_per_batch": 8,
                        "sources": [{"manifest": str(synth), "long_audio": "only"}],
                    }
                },
            },
        ],
    }
    path = tmp_path / "cur.yaml"
    path.write_text(yaml.safe_dump(spec))
    run(["-m", "training.curriculum", "--config", str(path)], timeout=300)
    dirs = [tmp_path / "cur" / f"{k}-{s}" for k, s in enumerate(("clap", "pretrain", "sft", "long"))]
    weights = [load_file(str(d / "model" / "model.safetensors")) for d in dirs]
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["frozen_unchanged"]
        assert summary["trainable_params"] > 0 and summary["frozen_params"] > 0
    # long audio reached the long stage (its mixture is long_audio: only)
    assert all(json.loads(line).get("long_audio") for line in (dirs[3] / "mixture.jsonl").read_text().splitlines())

    def same(a, b, prefix):
        keys = [k for k in a if k.startswith(prefix)]
        assert keys
        return all(torch.equal(a[k], b[k]) for k in keys)

    def changed(a, b, prefix):
        # parameters only (not buffers); HTSAT's fusion branch never runs in AF2
        skip = (".fusion_model.", ".mel_conv2d.", "relative_position_index", "running_", "num_batches_tracked")
        keys = [k for k in a if k.startswith(prefix) and not any(s in k for s in skip)]
        assert keys
        return all(not torch.equal(a[k], b[k]) for k in keys)

    clap, pre, sft, long = weights
    # stage 1 starts from AF-CLAP's weights and keeps AF-CLAP and the LLM body frozen
    assert same(clap, pre, "clap.") and same(clap, pre, "llm.model.layers.")
    assert changed(clap, pre, "audio_transformer.") and changed(clap, pre, "xattn.")
    # stage 2 trains the HTSAT too, still not the LLM body nor the text tower
    assert changed(pre, sft, "clap.audio.") and same(pre, sft, "clap.text.") and same(pre, sft, "llm.model.layers.")
    # stage 3 freezes AF-CLAP again
    assert same(sft, long, "clap.") and changed(sft, long, "xattn.")
    ckpts = sorted(p.name for p in (dirs[1] / "checkpoints").iterdir())
    assert "final" in ckpts and "latest" in ckpts and ".staging" not in ckpts
    # frozen weights are left out of the periodic checkpoints: smaller than the full final one
    step = Path(dirs[1] / "checkpoints" / "step-00000001" / "mp_rank_00_model_states.pt").stat().st_size
    final = Path(dirs[1] / "checkpoints" / "final" / "mp_rank_00_model_states.pt").stat().st_size
    assert step < final
