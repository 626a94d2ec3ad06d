"""Bad config values fail before training starts, naming the key."""

from __future__ import annotations

import pytest
import yaml

from af2.stages import STAGES
from training.config import ConfigError, load_config, parse_overrides
from training.curriculum import plan
from training.engine import ds_config, lr_lambda


def test_good_config_loads(stage_config):
    cfg = load_config(stage_config())
    assert cfg["deepspeed"]["zero_stage"] == 2 and cfg["optim"]["weight_decay"] == 0.1
    ds = ds_config(cfg)
    assert ds["gradient_clipping"] == 1.0 and ds["bf16"]["enabled"] is False
    assert ds["optimizer"]["params"]["torch_adam"] is True


@pytest.mark.parametrize(
    "override, key",
    [
        ({"train": {"max_stepz": 3}}, "train.max_stepz"),
        ({"bogus": 1}, "bogus"),
        ({"data": {"max_windows": 4, "max_windows_per_batch": 3}}, "data.max_windows_per_batch"),
        ({"train": {"grad_accum": 0}}, "train.grad_accum"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"deepspeed": {"zero_stage": 4}}, "deepspeed.zero_stage"),
        ({"data": {"sources": [{"manifest": "/nonexistent/m.jsonl"}]}}, "data.sources[0].manifest"),
        ({"data": {"sources": []}}, "data.sources"),
        ({"data": {"sources": [{"manifest": "x", "wieght": 2}]}}, "data.sources[0].wieght"),
        (
            {"stage": "clap", "clap": {"batch_size": 4}, "data": {"max_windows": 3, "max_windows_per_batch": 6}},
            "clap.batch_size",
        ),
        ({"init_from": "/nonexistent/stage"}, "init_from"),
        ({"model": {"preset": "bogus"}}, "model.preset"),
        ({"model": {"overrides": {"nope": 1}}}, "model.overrides.nope"),
        ({"clap": {"positives": 5}}, "clap.positives"),
    ],
)
def test_bad_values_name_the_key(stage_config, override, key):
    with pytest.raises(ConfigError) as err:
        load_config(stage_config(), override)
    assert err.value.key == key
    assert f"'{key}'" in str(err.value)


def test_overrides_parse():
    assert parse_overrides(["train.max_steps=5", "deepspeed.precision=fp32"]) == {
        "train": {"max_steps": 5},
        "deepspeed": {"precision": "fp32"},
    }


def test_schedule_warms_up_then_decays(stage_config):
    cfg = load_config(stage_config(), {"optim": {"warmup_steps": 2, "min_lr_ratio": 0.1}, "train": {"max_steps": 10}})
    f = lr_lambda(cfg)
    assert f(0) < f(1) < f(2) == 1.0
    assert f(10) == pytest.approx(0.1) and f(6) < f(3)


def test_curriculum_catches_bad_model_and_clap_keys_before_stage_0(tmp_path, stage_config):
    stage = stage_config()
    for overrides, key in (
        ({"model": {"preset": "bogus"}}, "model.preset"),
        ({"model": {"overrides": {"nope": 1}}}, "model.overrides.nope"),
        ({"clap": {"positives": 9}}, "clap.positives"),
    ):
        spec = {
            "output_dir": str(tmp_path / "c"),
            "stages": [{"config": str(stage)}, {"config": str(stage), "overrides": overrides}],
        }
        path = tmp_path / "cur.yaml"
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(ConfigError, match=rf"stages\[1\]\.{key}"):
            plan(path)
    assert not (tmp_path / "c").exists()


def test_curriculum_validates_every_stage_first(tmp_path, stage_config):
    stage = stage_config()
    spec = {
        "output_dir": str(tmp_path / "c"),
        "stages": [{"config": str(stage)}, {"config": str(stage), "overrides": {"optim": {"lr": -1}}}],
    }
    path = tmp_path / "cur.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match=r"stages\[1\].optim.lr"):
        plan(path)
    spec["stages"][1]["overrides"] = {}
    path.write_text(yaml.safe_dump(spec))
    cfgs = plan(path)
    assert cfgs[0]["init_from"] is None and cfgs[1]["init_from"] == cfgs[0]["output"]["dir"]


def test_shipped_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    for name in STAGES:
        cfg = load_config(root / f"{name}.yaml", check=False)
        assert cfg["stage"] == name
    assert [
        load_config(root / "sft.yaml", check=False)["optim"]["lr"],
        load_config(root / "pretrain.yaml", check=False)["optim"]["lr"],
    ] == [2e-5, 1e-4]
