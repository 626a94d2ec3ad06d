"""The loggers of a stage: TensorBoard scalars read back from the event file, a W&B offline run
in the output directory, and a logger whose package is missing refused when the config loads."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.training.conftest import run
from training.config import ConfigError, load_config


def test_tensorboard_scalars_are_written(stage_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = stage_config("tb", output={"tensorboard": True})
    run(["-m", "training.train", "--config", str(cfg)])
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/samples_per_s"} <= set(tags)
    metrics = [json.loads(line) for line in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([m["loss"] for m in metrics], rel=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed")
def test_wandb_offline_logs_to_the_output_directory(stage_config, tmp_path):
    cfg = stage_config("wb", output={"wandb": "offline"}, train={"max_steps": 2, "progress": False})
    run(["-m", "training.train", "--config", str(cfg)])
    (run_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert b"train/loss" in data and b"train/lr" in data


@pytest.mark.parametrize(
    "key, value, package, install",
    [
        ("tensorboard", True, "tensorboard", "pip install 'af2[train]'"),
        ("wandb", "offline", "wandb", "pip install 'af2[wandb]'"),
    ],
)
def test_logger_without_its_package_is_a_config_error(
    stage_config, tmp_path, monkeypatch, capsys, key, value, package, install
):
    from training.train import main

    cfg = stage_config("missing", output={key: value})
    monkeypatch.setitem(__import__("sys").modules, package, None)
    with pytest.raises(
        ConfigError,
        match=rf"config key 'output.{key}': .* asks for {package}, which is not "
        rf"installed: {install.replace('[', '.').replace(']', '.')}",
    ):
        load_config(cfg)
    capsys.readouterr()
    assert main(["--config", str(cfg)]) == 2  # the command line: one line naming the key, status 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"output.{key}" in err[0] and install in err[0]
    assert not (tmp_path / "missing").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "value, ok", [(None, True), (False, True), ("offline", True), ("online", True), ("yes", False), (True, False)]
)
def test_wandb_values(stage_config, monkeypatch, value, ok):
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)
    cfg = stage_config("w", output={"wandb": value})
    if value in (None, False):
        assert load_config(cfg)["output"]["wandb"] is None
    elif ok:  # a valid mode: only the missing package stops it
        with pytest.raises(ConfigError, match="asks for wandb"):
            load_config(cfg)
    else:
        with pytest.raises(ConfigError, match="output.wandb"):
            load_config(cfg)
