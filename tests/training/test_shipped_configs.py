"""The configs shipped in training/configs are found by name from any directory, as a wheel's
user (who has no checkout) gives them: ``--config pretrain``."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, bundled_configs, load_config, resolve_config_path
from training.curriculum import plan

SHIPPED = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_names_and_checkout_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert set(bundled_configs()) == {"clap", "pretrain", "sft", "long", "curriculum"}
    for given in ("pretrain", "pretrain.yaml", "training/configs/pretrain.yaml"):
        assert resolve_config_path(given) == SHIPPED / "pretrain.yaml"
    (tmp_path / "pretrain.yaml").write_text("stage: sft\n")  # a file of the user's wins
    assert resolve_config_path("pretrain.yaml") == Path("pretrain.yaml")
    assert load_config("sft", check=False)["stage"] == "sft"


def test_unknown_config_and_directory_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"config key 'config': no such file: nope.yaml \(shipped configs: clap, "):
        resolve_config_path("nope.yaml")
    with pytest.raises(ConfigError, match="is a directory, not a YAML file"):
        resolve_config_path(tmp_path)
    with pytest.raises(ConfigError, match="no such file: elsewhere/pretrain.yaml"):
        resolve_config_path("elsewhere/pretrain.yaml")


def test_shipped_curriculum_plans_from_another_directory(tmp_path, monkeypatch, synth):
    monkeypatch.chdir(tmp_path)
    cfgs = plan("curriculum", {"data": {"sources": [{"manifest": str(synth)}]}})
    assert [c["stage"] for c in cfgs] == ["clap", "pretrain", "sft", "long"]
