"""Atomic DeepSpeed checkpoints: write into ``<root>/.staging/<tag>``, then rename.

Layout of ``<root>`` (``<output>/checkpoints``)::

    step-00000010/          a complete checkpoint: DeepSpeed's files, rng-rank<r>.pt (CPU and,
                            with CUDA, this rank's device RNG),
                            trainer_state.json (written last, before the rename)
    final/                  the stage's last checkpoint, frozen weights included
    latest                  the newest complete tag (written to a temp file, then renamed)
    .staging/               work in progress; removed at start and after each save

A directory is a checkpoint only with ``trainer_state.json`` inside; a kill at any moment
leaves either the previous checkpoint or the new one, never a half-written one taken for good.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

STATE = "trainer_state.json"
LATEST = "latest"
STAGING = ".staging"


def _fsync_tree(path: Path) -> None:
    for f in sorted(path.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_complete(path: Path) -> bool:
    return (path / STATE).is_file()


def clean_staging(root: Path) -> None:
    if dist.get_rank() == 0:
        shutil.rmtree(root / STAGING, ignore_errors=True)
    dist.barrier()


def save(engine, root: Path, tag: str, state: dict, *, exclude_frozen: bool, keep: Optional[int] = None) -> Path:
    """Save atomically (collective: every rank calls it). Returns the checkpoint's path."""
    rank = dist.get_rank()
    staging = root / STAGING
    engine.save_checkpoint(str(staging), tag=tag, save_latest=False, exclude_frozen_parameters=exclude_frozen)
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()  # this rank's device (set in setup_distributed)
    torch.save(rng, staging / tag / f"rng-rank{rank}.pt")
    dist.barrier()
    final = root / tag
    if rank == 0:
        (staging / tag / STATE).write_text(json.dumps(state, indent=1))
        _fsync_tree(staging / tag)
        if final.exists():  # an older checkpoint of the same tag: move it aside first
            shutil.rmtree(final)
        os.rename(staging / tag, final)
        _write_atomic(root / LATEST, tag)
        shutil.rmtree(staging, ignore_errors=True)
        if keep is not None:
            prune(root, keep)
    dist.barrier()
    return final


def prune(root: Path, keep: int) -> None:
    """Keep the ``keep`` newest complete step-* checkpoints (``final`` is never pruned)."""
    steps = sorted((p for p in root.glob("step-*") if is_complete(p)), key=lambda p: p.name)
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def find_latest(root: Path) -> Optional[Path]:
    """The checkpoint named by ``latest`` if complete, else the newest complete one, else None."""
    if not root.is_dir():
        return None
    named = (root / LATEST).read_text().strip() if (root / LATEST).is_file() else ""
    if named and is_complete(root / named):
        return root / named
    found = sorted((p for p in root.iterdir() if p.is_dir() and p.name != STAGING and is_complete(p)),
                   key=lambda p: json.loads((p / STATE).read_text())["step"])
    return found[-1] if found else None


def load(engine, path: Path, *, strict: bool) -> dict:
    """Resume: module, optimizer, scheduler, this rank's RNG; returns the trainer state."""
    load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=strict)
    if load_path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint {path}")
    rng = path / f"rng-rank{dist.get_rank()}.pt"
    if rng.is_file():
        states = torch.load(rng, weights_only=True)
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state(states["cuda"])
    return json.loads((path / STATE).read_text())
