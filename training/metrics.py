"""Observability: JSONL metrics per step, tqdm, optional TensorBoard and Weights & Biases, stage
summary, and the bit-exact digests that prove frozen weights unchanged (and trainable ones changed).

The loggers' packages are checked when the config loads (training/config.py), before training."""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
from torch import nn


def _gathered(params: list[nn.Parameter]):
    """ZeRO-3 partitions parameters: gather them to read full values (no-op otherwise)."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    return nullcontext()


def digests(module: nn.Module, params: list[nn.Parameter]) -> dict[str, str]:
    """name -> blake2b of the parameter's bytes, for ``params`` (bit-exact fingerprint)."""
    wanted = {id(p) for p in params}
    named = [(n, p) for n, p in module.named_parameters() if id(p) in wanted]
    out = {}
    with _gathered([p for _, p in named]):
        for name, p in named:
            data = p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()
            out[name] = hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()
    return out


def count(params: list[nn.Parameter]) -> int:
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in params)


#: Trainable parameters that never get a gradient in AF2 (HTSAT's fusion branch, for audio
#: "longer" than one window, which AF2 never feeds it): "unchanged" is expected for them.
NEVER_USED = (".fusion_model.", ".mel_conv2d.")


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the records of steps <= ``step`` (a resume at ``step``; 0 = a fresh run): steps logged
    after the checkpoint that is resumed are run again and must not appear twice."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):  # a line cut by a kill: dropped
            continue
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    tmp.replace(path)


def unexpected_unchanged(names: list[str]) -> list[str]:
    """The trainable parameters that did not change and should have."""
    return [n for n in names if not any(s in n for s in NEVER_USED)]


#: the scalars each step sends to TensorBoard / W&B (as train/<key>), when present
SCALARS = ("loss", "lr", "samples_per_s", "grad_norm")


class MetricsLogger:
    """Rank 0 writes ``metrics.jsonl`` (one object per optimizer step), a tqdm bar and, if
    asked, TensorBoard scalars (``<out>/tensorboard``) and a W&B run (``wandb``: "offline" writes
    it under ``<out>/wandb``, "online" also uploads; ``config`` is recorded with it); other ranks
    only keep time."""

    def __init__(
        self,
        out: Path,
        *,
        rank: int,
        total: int,
        start: int,
        progress: bool,
        tensorboard: bool,
        desc: str,
        wandb: Optional[str] = None,
        config: Optional[dict] = None,
    ):
        self.rank, self.t0 = rank, time.time()
        self.file = self.bar = self.tb = self.wandb = None
        if rank != 0:
            return
        out.mkdir(parents=True, exist_ok=True)
        truncate_metrics(out / "metrics.jsonl", start)
        self.file = open(out / "metrics.jsonl", "a")
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        if wandb:
            import wandb as wandb_lib

            self.wandb = wandb_lib.init(
                project="af2", name=f"{desc}-{out.name}", dir=str(out), mode=wandb, config=config
            )

    def step(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", sps=f"{record['samples_per_s']:.1f}"
            )
        scalars = {f"train/{k}": record[k] for k in SCALARS if record.get(k) is not None}
        if self.tb is not None:
            for key, value in scalars.items():
                self.tb.add_scalar(key, value, record["step"])
        if self.wandb is not None:
            self.wandb.log(scalars, step=record["step"])

    def close(self) -> None:
        for handle in (self.bar, self.tb, self.file):
            if handle is not None:
                handle.close()
        if self.wandb is not None:
            self.wandb.finish()


def write_summary(out: Path, summary: dict, rank: int) -> None:
    if rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        lines = [f"  {k}: {v}" for k, v in summary.items() if not isinstance(v, (dict, list))]
        print(f"stage {summary['stage']} done\n" + "\n".join(lines), flush=True)


def check_frozen(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Names of frozen parameters whose bytes changed."""
    return sorted(k for k in before if after.get(k) != before[k])


def check_trained(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Names of trainable parameters that did not change at all."""
    return sorted(k for k in before if after.get(k) == before[k])


def grad_norm(engine) -> Optional[float]:
    try:
        value = engine.get_global_grad_norm()
    except Exception:  # noqa: BLE001 - not every ZeRO stage / version reports it
        return None
    return None if value is None else float(value)
