"""2 ranks on the CPU (gloo, torchrun): same loss curve as 1 rank with the same global batch;
the contrastive stage runs its distributed loss; DeepSpeed's own launcher runs the trainer;
both ranks resume together past a damaged checkpoint."""

from __future__ import annotations

import json
import socket

from tests.training.conftest import run


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _torchrun(cfg, n: int, *extra: str):
    return run(
        [
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={n}",
            "--master_addr=127.0.0.1",
            f"--master_port={_port()}",
            "-m",
            "training.train",
            "--config",
            str(cfg),
            *extra,
        ],
        timeout=300,
    )


def _losses(out) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def test_two_ranks_match_one_rank_with_same_global_batch(stage_config, tmp_path):
    # one rank accumulating 2 micro-batches == 2 ranks with one each (the sampler plans the same
    # global batches: max_batch_size 2 over 1-window clips gives an even number of batches)
    one = stage_config("one", train={"max_steps": 3, "grad_accum": 2, "progress": False})
    two = stage_config("two", train={"max_steps": 3, "grad_accum": 1, "progress": False})
    _torchrun(one, 1)
    _torchrun(two, 2)
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert abs(x - y) <= 1e-4 * max(1.0, abs(x)), (a, b)
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["world_size"] == 2 and s1["samples"] == s2["samples"]


def test_contrastive_stage_on_two_ranks(stage_config, tmp_path):
    cfg = stage_config(
        "clap2",
        stage="clap",
        clap={"batch_size": 2, "positives": 2, "negatives": 2},
        train={"max_steps": 2, "progress": False},
    )
    _torchrun(cfg, 2)
    summary = json.loads((tmp_path / "clap2" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["frozen_unchanged"]
    # only HTSAT's fusion branch (for audio "longer" than a window, never run by AF2) gets no gradient
    assert summary["trainable_unchanged"] and all(
        ".fusion_model." in n or ".mel_conv2d." in n for n in summary["trainable_unchanged"]
    )


def test_deepspeed_launcher_two_ranks(stage_config, tmp_path):
    # `deepspeed --num_gpus=2 --module training.train ...` (the launcher's CPU mode: DS_ACCELERATOR=cpu)
    cfg = stage_config("dsl", train={"max_steps": 2, "progress": False})
    run(
        [
            "-m",
            "deepspeed.launcher.runner",
            "--num_gpus=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_port()}",
            "--module",
            "training.train",
            "--config",
            str(cfg),
        ],
        timeout=300,
    )
    summary = json.loads((tmp_path / "dsl" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["frozen_unchanged"]
    assert len(_losses(tmp_path / "dsl")) == 2


def test_two_ranks_resume_past_a_damaged_checkpoint(stage_config, tmp_path):
    # rank 1's optimizer states of the latest checkpoint cut short: both ranks skip it, together
    cfg = stage_config("resume2", train={"max_steps": 2, "checkpoint_every": 1, "progress": False})
    _torchrun(cfg, 2)
    bad = tmp_path / "resume2" / "checkpoints" / "final" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    bad.write_bytes(bad.read_bytes()[:100])
    proc = _torchrun(cfg, 2, "--resume")
    assert "checkpoint final is damaged, skipped" in proc.stderr and "zero_pp_rank_1_mp_rank_00" in proc.stderr
    summary = json.loads((tmp_path / "resume2" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["resumed_at"] == 1 and summary["steps"] == 2
