"""Exit statuses of ``af2 train``, ``af2 curriculum`` and ``af2 demo``: 0 a stage trained, 2 a
bad flag, a missing or bad config file or value (one line, nothing written, no training)."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest
import yaml

from tests.cli.conftest import bad_input, files_under
from tests.training.conftest import run, stage_config, synth  # noqa: F401  (fixtures)

pytest.importorskip("deepspeed")


def test_train_runs_a_stage_with_set_and_seed(stage_config, tmp_path):  # noqa: F811  (the fixture)
    cfg = stage_config("stage")
    run(["-m", "af2", "train", "--config", str(cfg), "--set", "train.max_steps=1", "--seed", "3"])
    summary = json.loads((tmp_path / "stage" / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["frozen_unchanged"]


def test_seed_sets_every_seed_and_set_is_yaml():
    from training.cli.train import overrides
    from training.config import load_config

    extra = overrides(Namespace(overrides=["train.max_steps=7", "optim.betas=[0.8, 0.9]"], seed=3))
    cfg = load_config(None, extra, check=False)
    assert (cfg["model"]["seed"], cfg["data"]["seed"], cfg["train"]["seed"]) == (3, 3, 3)
    assert cfg["train"]["max_steps"] == 7 and cfg["optim"]["betas"] == [0.8, 0.9]
    assert overrides(Namespace(overrides=[], seed=None)) == {}


@pytest.mark.parametrize("verb", ["train", "curriculum"])
def test_a_bad_config_is_status_2_and_nothing_runs(af2, tmp_path, verb):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"stage": "pretrain", "output": {"dir": str(tmp_path / "run")}}))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(
        yaml.safe_dump(
            {"stage": "pretrain", "trian": {"max_steps": 1}}
            if verb == "train"
            else {"stages": [{"config": "good.yaml"}], "trian": {"max_steps": 1}}
        )
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("stage: [pretrain\n")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"stage: pr\xe9train\n")
    before = files_under(tmp_path)
    bad_input(af2(verb, "--config", tmp_path / "missing.yaml"), "--config", "no such file")
    bad_input(af2(verb, "--config", tmp_path), "--config", "is a directory")
    bad_input(af2(verb), "--config")
    bad_input(af2(verb, "--config", good, "--set", "train.max_steps"), "--set", "KEY.SUB=VALUE")
    bad_input(af2(verb, "--config", good, "--seed", "-1"), "--seed")
    bad_input(af2(verb, "--config", unknown), "--config", "trian")
    bad_input(af2(verb, "--config", broken), "--config", str(broken), "not valid YAML", "line 2")
    bad_input(af2(verb, "--config", latin), "--config", "utf-8")
    if verb == "train":
        bad_input(af2(verb, "--config", good, "--set", "train.max_steps=many"), "train.max_steps")
        bad_input(af2(verb, "--config", good, "--set", "stage=dance"), "stage")
    else:
        bad_input(af2(verb, "--config", good), "--config")  # a stage config is not a curriculum
    assert files_under(tmp_path) == before and not (tmp_path / "run").exists()


def test_demo_bad_flags_are_status_2(af2, tmp_path):
    (tmp_path / "file").write_text("keep")
    bad_input(af2("demo", "--output", tmp_path / "file"), "--output", "not a directory")
    bad_input(af2("demo", "--output", tmp_path / "file" / "demo"), "--output")
    bad_input(af2("demo", "--output", tmp_path / "d", "--steps-scale", "0"), "--steps-scale")
    bad_input(af2("demo", "--output", tmp_path / "d", "--workers", "-1"), "--workers")
    bad_input(af2("demo", "--output", tmp_path / "d", "--seed", "x"), "--seed")
    assert files_under(tmp_path) == {"file": b"keep"}


def test_old_training_entry_points_keep_their_flags(capsys):
    from training import curriculum, demo, train

    for main in (train.main, curriculum.main, demo.main):
        assert main(["--help"]) == 0
    assert "--output DIR, --out DIR" in capsys.readouterr().out
    assert train.main(["--config", "missing.yaml"]) == 2
    assert "python -m training.train: error: argument --config: no such file" in capsys.readouterr().err
