"""The main job's curriculum (training/configs/demo/): valid stage configs planned by the same
runner as any curriculum, paths taken from the job's output folder, the ``demo`` model preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from af2.data.synth.generate import generate
from af2.stages import STAGES
from training import demo
from training.config import SCHEMA, ConfigError, load_config
from training.curriculum import plan

DEMO = Path(__file__).resolve().parents[2] / "training" / "configs" / "demo"


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A main-job output folder holding data/train/manifest.jsonl (2 clips, 1 long scene)."""
    out = tmp_path_factory.mktemp("job")
    generate(out / "data" / "train", 2, seed=0, n_long=1, long_seconds=(30.0, 31.0), speech="formant")
    return out


@pytest.mark.parametrize("mode", sorted(demo.CURRICULA))
def test_demo_curricula_plan_every_stage(job, mode):
    cfgs = demo.stage_configs(job, mode=mode, seed=5, workers=0)
    assert [c["stage"] for c in cfgs] == list(STAGES)
    assert [c["init_from"] for c in cfgs] == [None] + [c["output"]["dir"] for c in cfgs[:-1]]
    for k, cfg in enumerate(cfgs):
        assert cfg["output"]["dir"] == str(job / "runs" / f"{k}-{cfg['stage']}")
        assert cfg["model"] == {**SCHEMA["model"], "preset": "demo", "seed": 5}
        assert cfg["train"]["seed"] == cfg["data"]["seed"] == 5 and cfg["train"]["freeze_batchnorm"]
        for src in cfg["data"]["sources"]:
            assert src["manifest"] == str(job / "data" / "train" / "manifest.jsonl")
        # stages shorter than the longest scene never train on a cut one
        if cfg["data"]["max_windows"] * 10 < 300:
            assert all(src.get("long_audio") == "exclude" for src in cfg["data"]["sources"])
    long_stage = cfgs[-1]
    assert long_stage["data"]["max_windows"] == 30
    assert [s.get("long_audio") for s in long_stage["data"]["sources"]] == ["only", "exclude"]


def test_quick_runs_the_same_stage_files_with_fewer_steps(job):
    full, quick = (yaml.safe_load((DEMO / demo.CURRICULA[m]).read_text()) for m in ("full", "quick"))
    assert [s["config"] for s in full["stages"]] == [s["config"] for s in quick["stages"]]
    steps = [c["train"]["max_steps"] for c in demo.stage_configs(job, mode="quick", seed=0, workers=0)]
    assert max(steps) <= 2


def test_every_demo_stage_file_is_a_valid_config(job):
    for name in ("clap", "pretrain", "sft", "long"):
        text = yaml.safe_load((DEMO / f"{name}.yaml").read_text())
        srcs = [{**s, "manifest": str(job / s["manifest"])} for s in text["data"]["sources"]]
        cfg = load_config(DEMO / f"{name}.yaml", {"data": {"sources": srcs}})
        assert cfg["stage"] == name


def test_steps_scale_scales_steps_and_keeps_warmup_within_them(job):
    base = demo.stage_configs(job, mode="full", seed=0, workers=0)
    scaled = demo.stage_configs(job, mode="full", seed=0, workers=0, steps_scale=0.1)
    for a, b in zip(base, scaled):
        assert b["train"]["max_steps"] == max(1, round(a["train"]["max_steps"] * 0.1))
        assert b["optim"]["warmup_steps"] <= max(1, b["train"]["max_steps"] // 5)
        assert b["init_from"] == a["init_from"]


def test_plan_takes_relative_paths_from_base_dir(tmp_path, job):
    spec = {
        "output_dir": "out",
        "stages": [{"config": str(DEMO / "pretrain.yaml"), "overrides": {"train": {"max_steps": 30}}}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(spec))
    (cfg,) = plan(path, base_dir=job)
    assert cfg["output"]["dir"] == str(job / "out" / "0-pretrain")
    assert cfg["data"]["sources"][0]["manifest"] == str(job / "data" / "train" / "manifest.jsonl")
    with pytest.raises(ConfigError, match=r"'stages\[0\]\.data\.sources\[0\]\.manifest': no such file"):
        plan(path, base_dir=tmp_path)  # no data there


def test_report_rows_for_long_scenes_by_length():
    def ev(acc_long, by_len):
        return {
            "by_skill": {
                "counting": {"n": 4, "accuracy": 0.5, "chance": 0.25},
                "all": {"n": 4, "accuracy": 0.5, "chance": 0.25},
            },
            "long_audio": {"n": 6, "accuracy": acc_long, "chance": 0.3},
            "long_audio_by_length": by_len,
        }

    by_len = {"30-60 s": {"n": 4, "accuracy": 0.75, "chance": 0.3}, "2-5 min": {"n": 2, "accuracy": 0.5, "chance": 0.3}}
    evals = {"untrained": ev(0.2, {}), "trained": ev(2 / 3, by_len), "trained_shuffled_audio": ev(0.3, by_len)}
    rows = demo.skill_table(evals)
    names = [r["skill"] for r in rows]
    assert names == ["counting", "all", "long_audio (long scenes)", "long_audio 30-60 s", "long_audio 2-5 min"]
    row = rows[3]
    assert row["n"] == 4 and row["trained"] == 0.75 and row["untrained"] != row["untrained"]  # nan: not measured
    assert row["z_trained_vs_chance"] == round(demo.z_score(0.75, 0.3, 4), 2)
    assert [demo.length_bin(s) for s in (30.0, 59.9, 60.0, 119.9, 120.0, 300.0)] == [
        "30-60 s",
        "30-60 s",
        "1-2 min",
        "1-2 min",
        "2-5 min",
        "2-5 min",
    ]
    json.dumps(rows)  # the report's JSON
