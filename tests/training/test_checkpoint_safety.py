"""Resume trusts nothing on disk: a planted pickle in any checkpoint file is refused (naming the
file) before it can run; a damaged latest checkpoint falls back to the newest good one with a
warning; no usable checkpoint at all is a clear error and exit 2."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file as save_safetensors

from tests.training.conftest import run
from training.checkpoint import candidates, verify
from training.safe_load import DamagedCheckpointError, UnsafeCheckpointError, install, load_file


class Planted:
    """Unpickling this creates ``marker`` (what a hostile file would do with os.system)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _plant(path, marker, how: str = "torch") -> None:
    payload = {"module": Planted(marker), "weights": torch.zeros(3)}
    if how == "torch":
        torch.save(payload, path)
    elif how == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))


@pytest.mark.parametrize("how", ["torch", "legacy", "pickle"])
def test_planted_pickle_is_refused_without_running(tmp_path, how):
    marker, path = tmp_path / "ran", tmp_path / "mp_rank_00_model_states.pt"
    _plant(path, marker, how)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_file(path)
    assert not marker.exists()
    assert str(path) in str(e.value) and "could run code" in str(e.value)


def test_content_the_weights_only_loader_rejects_is_refused(tmp_path):
    path = tmp_path / "rng-rank0.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(UnsafeCheckpointError, match="rng-rank0.pt: refused"):
        load_file(path)


def test_deepspeeds_checkpoint_engine_is_replaced_and_refuses_pickles(tmp_path):
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    class Engine:  # what install needs of a DeepSpeedEngine
        _config = None
        checkpoint_engine = TorchCheckpointEngine()

    engine = Engine()
    install(engine)
    install(engine)  # idempotent
    assert type(engine.checkpoint_engine).__name__ == "SafeCheckpointEngine"
    marker, path = tmp_path / "ran", tmp_path / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    _plant(path, marker)
    with pytest.raises(UnsafeCheckpointError, match="zero_pp_rank_0_mp_rank_00_optim_states.pt"):
        engine.checkpoint_engine.load(str(path), map_location="cpu")
    assert not marker.exists()
    good = tmp_path / "good.pt"
    torch.save({"x": torch.arange(3)}, good)
    assert torch.equal(engine.checkpoint_engine.load(str(good))["x"], torch.arange(3))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut", "half"])
def test_unreadable_file_is_damaged(tmp_path, content):
    path = tmp_path / "rng-rank0.pt"
    torch.save({"torch": torch.get_rng_state()}, path)
    if content == "half":
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(DamagedCheckpointError, match="rng-rank0.pt: unreadable"):
        load_file(path)


# --- real checkpoints: one short run (steps 1, 2 and final = 3), copied for each case ---------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth):
    base = tmp_path_factory.mktemp("trained")
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
        "train": {"max_steps": 3, "checkpoint_every": 1, "keep_checkpoints": 3, "progress": False},
        "output": {"dir": str(base / "run")},
    }
    (base / "run.yaml").write_text(yaml.safe_dump(cfg))
    run(["-m", "training.train", "--config", str(base / "run.yaml")])
    return base


def _copy(trained, tmp_path):
    """A private copy of the trained run: (config path, checkpoints root)."""
    shutil.copytree(trained / "run", tmp_path / "run")
    cfg = yaml.safe_load((trained / "run.yaml").read_text())
    cfg["output"]["dir"] = str(tmp_path / "run")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "run.yaml", tmp_path / "run" / "checkpoints"


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_checkpoints_record_their_sizes_and_verify(trained):
    root = trained / "run" / "checkpoints"
    assert [p.name for p in candidates(root)] == ["final", "step-00000002", "step-00000001"]
    for path in candidates(root):
        sizes = json.loads((path / "files.json").read_text())["sizes"]
        assert "mp_rank_00_model_states.pt" in sizes and "rng-rank0.pt" in sizes
        verify(path)


@pytest.mark.parametrize(
    "name", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", "rng-rank0.pt", "extra.pt"]
)
def test_verify_refuses_a_planted_pickle_in_any_file(trained, tmp_path, name):
    _, root = _copy(trained, tmp_path)
    marker = tmp_path / "ran"
    _plant(root / "final" / name, marker)
    with pytest.raises(UnsafeCheckpointError, match=name):
        verify(root / "final")
    assert not marker.exists()


def test_verify_finds_wrong_sizes_and_bad_state(trained, tmp_path):
    _, root = _copy(trained, tmp_path)
    with open(root / "final" / "rng-rank0.pt", "ab") as fh:  # still a loadable zip, but not what was written
        fh.write(b"\0" * 10)
    with pytest.raises(DamagedCheckpointError, match=r"rng-rank0.pt: \d+ bytes, \d+ written"):
        verify(root / "final")
    (root / "step-00000002" / "mp_rank_00_model_states.pt").unlink()
    with pytest.raises(DamagedCheckpointError, match="mp_rank_00_model_states.pt: missing"):
        verify(root / "step-00000002")
    (root / "step-00000001" / "trainer_state.json").write_text('{"step": 1, "ep')
    with pytest.raises(DamagedCheckpointError, match="trainer_state.json: unreadable"):
        verify(root / "step-00000001")


def test_resume_refuses_a_planted_pickle_and_exits_2(trained, tmp_path):
    cfg, root = _copy(trained, tmp_path)
    marker = tmp_path / "ran"
    _plant(root / "final" / "mp_rank_00_model_states.pt", marker)
    proc = run(["-m", "training.train", "--config", str(cfg), "--resume"], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not marker.exists()
    assert "final/mp_rank_00_model_states.pt: refused" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_falls_back_from_a_truncated_latest_checkpoint(trained, tmp_path):
    cfg, root = _copy(trained, tmp_path)
    _truncate(root / "final" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    proc = run(["-m", "training.train", "--config", str(cfg), "--resume"])
    assert "checkpoint final is damaged, skipped" in proc.stderr
    assert "final/zero_pp_rank_0_mp_rank_00_optim_states.pt: unreadable" in proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["resumed_at"] == 2 and summary["steps"] == 3
    # resumed from step 2, the run ends where the uninterrupted one did (CPU fp32: bitwise)
    a = load_safetensors(str(trained / "run" / "model" / "model.safetensors"))
    b = load_safetensors(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    verify(root / "final")  # the damaged one was replaced by a good one


def test_resume_with_every_checkpoint_damaged_exits_2(trained, tmp_path):
    cfg, root = _copy(trained, tmp_path)
    _truncate(root / "final" / "mp_rank_00_model_states.pt")
    _truncate(root / "step-00000002" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    (root / "step-00000001" / "rng-rank0.pt").write_bytes(b"")
    proc = run(["-m", "training.train", "--config", str(cfg), "--resume"], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "no usable checkpoint to resume from (3 found, all damaged)" in proc.stderr
    for bad in (
        "final/mp_rank_00_model_states.pt",
        "step-00000002/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "step-00000001/rng-rank0.pt",
    ):
        assert bad in proc.stderr
    assert "Traceback" not in proc.stderr


def test_curriculum_resume_refuses_a_planted_pickle_and_exits_2(trained, tmp_path, synth):
    from tests.training.conftest import ROOT

    shutil.copytree(trained / "run", tmp_path / "cur" / "0-pretrain")
    (tmp_path / "cur" / "0-pretrain" / "summary.json").unlink()  # the stage is unfinished
    marker = tmp_path / "ran"
    _plant(tmp_path / "cur" / "0-pretrain" / "checkpoints" / "final" / "rng-rank0.pt", marker)
    spec = {
        "output_dir": str(tmp_path / "cur"),
        "overrides": {"data": {"sources": [{"manifest": str(synth)}], "num_workers": 0}},
        "stages": [{"config": str(ROOT / "training" / "configs" / "pretrain.yaml")}],
    }
    (tmp_path / "cur.yaml").write_text(yaml.safe_dump(spec))
    proc = run(["-m", "training.curriculum", "--config", str(tmp_path / "cur.yaml"), "--resume"], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "final/rng-rank0.pt: refused" in proc.stderr and not marker.exists()


def test_damaged_init_from_names_the_file(tmp_path):
    from training.stages import load_init

    weights = tmp_path / "prev" / "model" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    save_safetensors({"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}, str(weights))
    _truncate(weights)
    with pytest.raises(DamagedCheckpointError, match="model.safetensors: unreadable"):
        load_init(torch.nn.Linear(2, 2), str(tmp_path / "prev"))
    with pytest.raises(DamagedCheckpointError, match="missing"):
        load_init(torch.nn.Linear(2, 2), str(tmp_path / "nothing"))
