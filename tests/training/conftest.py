"""Fixtures of the trainer tests: a small synthetic AudioSkills set and stage configs in tmp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """12 short clips + 1 long scene (4 questions), generated once per session."""
    from af2.data.synth.generate import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 12, seed=0, n_long=1, long_seconds=(30.0, 35.0), speech="formant")
    return out / "manifest.jsonl"


@pytest.fixture
def stage_config(tmp_path, synth):
    """stage_config(name="run", **sections) -> path of a tiny pretrain config under tmp_path."""

    def make(name: str = "run", **sections) -> Path:
        cfg = {
            "stage": "pretrain",
            "data": {
                "sources": [{"manifest": str(synth)}],
                "max_windows": 3,
                "max_windows_per_batch": 6,
                "max_batch_size": 2,
                "num_workers": 0,
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"max_steps": 4, "progress": False},
            "output": {"dir": str(tmp_path / name)},
        }
        for key, value in sections.items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    return make


def env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    e = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=path, OMP_NUM_THREADS="1")
    e.pop("RANK", None)
    return e


def run(args: list[str], *, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc
