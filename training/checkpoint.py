"""Atomic DeepSpeed checkpoints: write into ``<root>/.staging/<tag>``, then rename.

Layout of ``<root>`` (``<output>/checkpoints``)::

    step-00000010/          a complete checkpoint: DeepSpeed's files, rng-rank<r>.pt (CPU and,
                            with CUDA, this rank's device RNG), files.json (the size of every
                            file), trainer_state.json (written last, before the rename)
    final/                  the stage's last checkpoint, frozen weights included
    latest                  the newest complete tag (written to a temp file, then renamed)
    .staging/               work in progress; removed at start and after each save

A directory is a checkpoint only with ``trainer_state.json`` inside; a kill at any moment
leaves either the previous checkpoint or the new one, never a half-written one taken for good.

Resume (:func:`select`) trusts nothing on disk: from the newest checkpoint down, it checks each
one (trainer state readable, every file of files.json there with its size, every ``.pt`` file
loadable by :func:`training.safe_load.load_file`) and takes the first good one, warning about
each damaged one it skips. A file holding pickled code is never skipped quietly: resume stops
with :class:`~training.safe_load.UnsafeCheckpointError`. See docs/checkpoints.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from training.safe_load import (
    CheckpointError,
    DamagedCheckpointError,
    NoUsableCheckpointError,
    UnsafeCheckpointError,
    install,
    load_file,
)

STATE = "trainer_state.json"
FILES = "files.json"
LATEST = "latest"
STAGING = ".staging"
log = logging.getLogger("training")


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
        sizes = {
            f.relative_to(staging / tag).as_posix(): f.stat().st_size
            for f in sorted((staging / tag).rglob("*"))
            if f.is_file()
        }
        (staging / tag / FILES).write_text(json.dumps({"sizes": sizes}, indent=1))
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


def _step(path: Path) -> int:
    """The step recorded in a checkpoint's trainer state (-1 when unreadable: checked later)."""
    try:
        step = json.loads((path / STATE).read_text())["step"]
        return step if isinstance(step, int) else -1
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def candidates(root: Path) -> list[Path]:
    """The complete checkpoints of ``root``, newest first: the one named by ``latest``, then the
    others by step, highest first."""
    if not root.is_dir():
        return []
    try:
        named = (root / LATEST).read_text().strip() if (root / LATEST).is_file() else ""
    except (OSError, UnicodeDecodeError):
        named = ""
    found = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name != STAGING and is_complete(p)),
        key=lambda p: (p.name == named, _step(p), p.name),
        reverse=True,
    )
    return found


def verify(path: Path) -> None:
    """Check one checkpoint without loading its tensors: the trainer state is a JSON object with
    integer ``step``/``epoch``/``batch``; every ``.pt`` file's pickle loads weights-only (tensor
    data memory-mapped, not read); every file listed in files.json exists with its recorded size.
    Raises :class:`DamagedCheckpointError` or :class:`UnsafeCheckpointError` naming the file."""
    try:
        state = json.loads((path / STATE).read_text())
    except (OSError, ValueError) as e:
        raise DamagedCheckpointError(path / STATE, f"unreadable ({e})") from None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in ("step", "epoch", "batch")):
        raise DamagedCheckpointError(path / STATE, "no integer step, epoch and batch")
    for f in sorted(path.rglob("*.pt")):  # first: a planted file is refused, whatever its size
        load_file(f, mmap=True)
    if (path / FILES).is_file():
        try:
            sizes = json.loads((path / FILES).read_text())["sizes"]
            sizes = {str(k): int(v) for k, v in sizes.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DamagedCheckpointError(path / FILES, f"unreadable ({e})") from None
        for name, size in sizes.items():
            f = path / name
            if not f.is_file():
                raise DamagedCheckpointError(f, "missing")
            if f.stat().st_size != size:
                raise DamagedCheckpointError(f, f"{f.stat().st_size} bytes, {size} written")


def select(root: Path) -> Optional[Path]:
    """Resume (collective): the newest checkpoint of ``root`` that every rank verifies, or None
    when there is none at all. A damaged one is skipped with a warning naming the file and the
    fault; an unsafe one stops the run (every rank raises); none good raises
    :class:`NoUsableCheckpointError` listing what was wrong with each."""
    rank = dist.get_rank()
    found = candidates(root)
    problems = []
    for path in found:
        error = None
        try:
            verify(path)
        except CheckpointError as e:
            error = e
        flags = torch.tensor(
            [isinstance(error, DamagedCheckpointError), isinstance(error, UnsafeCheckpointError)], dtype=torch.int32
        )
        if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
            flags = flags.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        damaged, unsafe = bool(flags[0]), bool(flags[1])
        if unsafe:
            if isinstance(error, UnsafeCheckpointError):
                raise error
            raise UnsafeCheckpointError(path, "another rank refused a file of this checkpoint (see its error)")
        if not damaged:
            return path
        reason = str(error) if error is not None else f"{path}: damaged on another rank (see its warning)"
        problems.append(reason)
        if error is not None or rank == 0:
            log.warning("checkpoint %s is damaged, skipped: %s", path.name, reason)
    if problems:
        raise NoUsableCheckpointError(
            root,
            f"no usable checkpoint to resume from ({len(problems)} found, all damaged):\n  " + "\n  ".join(problems),
        )
    return None


def load(engine, path: Path, *, strict: bool) -> dict:
    """Resume: module, optimizer, scheduler, this rank's RNG; returns the trainer state. Every file
    is read weights-only (the engine's checkpoint engine is training.safe_load's)."""
    install(engine)
    load_path, _ = engine.load_checkpoint(str(path.parent), tag=path.name, load_module_strict=strict)
    if load_path is None:
        raise DamagedCheckpointError(path, "DeepSpeed could not load this checkpoint")
    rng = path / f"rng-rank{dist.get_rank()}.pt"
    if rng.is_file():
        states = load_file(rng)
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state(states["cuda"])
    return json.loads((path / STATE).read_text())
