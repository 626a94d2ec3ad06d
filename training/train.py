"""``python -m training.train --config training/configs/pretrain.yaml [--resume] [--set key=value ...]``

Runs one curriculum stage. The same module runs under ``torchrun`` and ``deepspeed`` (one
process per rank; the launcher's env gives rank and world size). ``--resume`` skips damaged
checkpoints with a warning (training.checkpoint.select); exit status 2 when no checkpoint (or
``init_from``) can be used, the message naming the file (docs/checkpoints.md).
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from pathlib import Path

import torch
import torch.distributed as dist

from training import checkpoint as ckpt
from training.clap import ClapCollator, caption_tokenizer
from training.data import BatchStream, build_loader, write_mixture
from training.engine import build_engine, setup_distributed
from training.metrics import (
    MetricsLogger,
    check_frozen,
    check_trained,
    count,
    digests,
    grad_norm,
    unexpected_unchanged,
    write_summary,
)
from training.norm_init import NORM_INIT_BATCHES, init_audio_norm_from_data
from training.stages import (
    StageModule,
    build_model,
    enable_gradient_checkpointing,
    freeze_for_stage,
    load_init,
    uses_feature_cache,
)

log = logging.getLogger("training")


class NonFiniteLossError(RuntimeError):
    """More non-finite losses than ``train.max_nonfinite``."""


class FrozenWeightsChanged(RuntimeError):
    """A parameter frozen in this stage changed."""


def _all_reduce(values: list[float], device, op=dist.ReduceOp.SUM) -> list[float]:
    """Reduce a few numbers over the ranks. ``device``: the engine's (NCCL takes CUDA tensors only)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=op)
    return t.tolist()


def _to_device(value, device):
    """The batch's tensors on the engine's device (DeepSpeed's forward does not move inputs)."""
    if torch.is_tensor(value):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _zero_loss(engine) -> torch.Tensor:
    """A term with zero gradient on every trainable parameter (ZeRO-0/1/2: full parameters)."""
    return sum((p * 0).sum() for p in engine.module.parameters() if p.requires_grad)


class _NanGrad(torch.autograd.Function):
    """Test hook (``debug.nan_grad_steps``): identity forward, non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def _export(engine, model, out: Path, rank: int) -> None:
    """The stage's model as af2's save_pretrained directory. ZeRO-3 weights are gathered first;
    ZeRO-1/2 keep parameters as views of one flat buffer, which safetensors refuses, so the
    export writes private copies and the engine's views are put back afterwards."""
    from training.metrics import _gathered

    params = list(model.parameters())
    with _gathered(params):
        if rank == 0:
            views = [p.data for p in params]
            try:
                for p in params:
                    p.data = p.data.clone()
                model.save_pretrained(out)
            finally:
                for p, v in zip(params, views):
                    p.data = v
    dist.barrier()


def _train_step(engine, stream, cfg: dict, step: int) -> tuple[list[float], int, bool]:
    """One optimizer step of ``grad_accum`` micro-batches: (finite losses, samples, skipped).

    A non-finite loss in any micro-batch, or a non-finite gradient norm at the accumulation
    boundary (finite losses, NaN/inf gradients), skips the whole optimizer step: no parameter,
    optimizer-state or lr-schedule update, gradients zeroed. Every micro-batch still runs its
    backward, so DeepSpeed's gradient hooks, reductions and micro-step counter stay aligned
    on every rank; a bad micro-batch backpropagates NaN into the gradients, and DeepSpeed's
    boundary check (ZeRO-1/2/3: a non-finite global gradient norm is an "overflow": step
    skipped, gradients cleared, ``engine.skipped_steps`` + 1) drops the step on all ranks at
    once (the norm is reduced over ranks). ZeRO-0 has no such check: the gradients are tested
    here and dropped before ``engine.step()``.
    """
    gas, dbg = cfg["train"]["grad_accum"], cfg["debug"]
    losses, samples, bad_loss = [], 0, False
    skipped_before = engine.skipped_steps
    # fp32 ZeRO-0 runs torch's AdamW with no overflow check: the gradients are tested here
    zero0 = engine.zero_optimization_stage() == 0 and not (engine.bfloat16_enabled() or engine.fp16_enabled())
    skip_zero0 = False
    for micro in range(gas):
        batch = _to_device(next(stream), engine.device)
        samples += len(batch["ids"])
        loss = engine(batch)
        if step in dbg["nan_loss_steps"] and dbg["nan_micro_batch"] in (None, micro):
            loss = loss * float("nan")
        if step in dbg["nan_grad_steps"] and micro == gas - 1:
            loss = _NanGrad.apply(loss)
        if bool(torch.isfinite(loss.detach()).all()):
            losses.append(float(loss.detach()))
        else:
            bad_loss = True
            # NaN gradients through the loss graph (and, where parameters are whole, on every
            # trainable one: a NaN loss need not reach every parameter)
            loss = loss * float("nan")
            if engine.zero_optimization_stage() < 3:
                loss = loss + _zero_loss(engine) * float("nan")
        engine.backward(loss)
        if zero0 and micro == gas - 1:  # the boundary backward has all-reduced the gradients
            grads = [p.grad for p in engine.module.parameters() if p.requires_grad and p.grad is not None]
            finite = all(bool(torch.isfinite(g).all()) for g in grads)
            skip_zero0 = _all_reduce([float(finite)], engine.device, dist.ReduceOp.MIN)[0] == 0
        if skip_zero0:  # what engine.step() does on an overflow at the boundary, minus the update
            engine.zero_grad()
            engine.skipped_steps += 1
            engine.global_steps += 1
            engine.global_samples += engine.train_batch_size()
            engine.micro_steps += 1
        else:
            engine.step()
    skipped = skip_zero0 or engine.skipped_steps > skipped_before
    if bad_loss and not skipped:
        raise RuntimeError(
            f"step {step}: a micro-batch had a non-finite loss but DeepSpeed applied the "
            "optimizer step (its overflow check is off: deepspeed.precision / zero_stage)"
        )
    return losses, samples, skipped


def _init_audio_norm(model, loader, cfg: dict, rank: int) -> dict | None:
    """``train.init_audio_norm_from_data``: the audio transformation's input LayerNorm set from
    the first :data:`NORM_INIT_BATCHES` batches (training.norm_init), before the engine copies
    the weights. A resumed run loads its checkpoint over it."""
    if not cfg["train"]["init_audio_norm_from_data"] or cfg["stage"] == "clap":
        return None
    batches = iter(loader)
    try:
        stats = init_audio_norm_from_data(model, itertools.islice(batches, NORM_INIT_BATCHES))
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if rank == 0:
        log.warning(
            "audio transformation input norm initialised from %d tokens (mean length %.3g, gains %.3g..%.3g)",
            stats["tokens"],
            stats["mean_norm"],
            stats["gain_min"],
            stats["gain_max"],
        )
    return stats


def run_stage(cfg: dict, *, resume: bool = False) -> dict:
    """Train one stage; returns its summary (also written to ``<output>/summary.json``)."""
    rank, world = setup_distributed()
    out = Path(cfg["output"]["dir"])
    root = out / "checkpoints"
    found = ckpt.select(root) if resume else None  # before anything is built: a bad checkpoint fails fast
    torch.manual_seed(cfg["train"]["seed"])
    model = build_model(cfg)
    if cfg["init_from"]:
        load_init(model, cfg["init_from"])
    if cfg["deepspeed"]["gradient_checkpointing"]:
        enable_gradient_checkpointing(model)
    trainable, frozen = freeze_for_stage(model, cfg)
    manifest = write_mixture(cfg["data"]["sources"], out / "mixture.jsonl", seed=cfg["data"]["seed"])
    collator = None
    if cfg["stage"] == "clap":
        c = cfg["clap"]
        collator = ClapCollator(
            caption_tokenizer(model.config),
            max_windows=cfg["data"]["max_windows"],
            m=c["positives"],
            n=c["negatives"],
            max_length=c["max_text_length"],
            seed=cfg["data"]["seed"],
        )
    # the feature cache's window keys: hashed by the loader's workers on a GPU, by the training
    # process on the CPU (why: training.feature_cache)
    loader = build_loader(
        cfg,
        manifest,
        model.tokenizer,
        world=world,
        rank=rank,
        collator=collator,
        window_keys=uses_feature_cache(model, cfg) and torch.cuda.is_available(),
    )
    norm_init = _init_audio_norm(model, loader, cfg, rank)
    engine = build_engine(StageModule(model, cfg), trainable, cfg)
    ckpt.clean_staging(root)
    frozen_before, trained_before = digests(engine.module, frozen), digests(engine.module, trainable)

    state = {"step": 0, "epoch": 0, "batch": 0, "skipped": 0, "samples": 0, "loss": None}
    if found is not None:
        state = ckpt.load(engine, found, strict=not cfg["deepspeed"]["exclude_frozen"] or found.name == "final")
        if rank == 0:
            log.warning("resumed from %s at step %d", found, state["step"])
    start_step = state["step"]
    stream = BatchStream(loader, state["epoch"], state["batch"])
    tr = cfg["train"]
    logger = MetricsLogger(
        out,
        rank=rank,
        total=tr["max_steps"],
        start=start_step,
        progress=tr["progress"],
        tensorboard=cfg["output"]["tensorboard"],
        wandb=cfg["output"]["wandb"],
        config=cfg,
        desc=cfg["stage"],
    )
    t_start = time.time()
    try:
        while state["step"] < tr["max_steps"]:
            t0 = time.time()
            step = state["step"] + 1
            losses, samples, bad = _train_step(engine, stream, cfg, step)
            loss_sum, n_loss, samples = _all_reduce([sum(losses), len(losses), samples], engine.device)
            state.update(step=step, samples=state["samples"] + int(samples), **stream.position)
            state["loss"] = loss_sum / n_loss if n_loss else None
            if bad:
                state["skipped"] += 1
                if rank == 0:
                    log.warning(
                        "step %d: non-finite loss or gradients, optimizer step skipped (%d so far)",
                        step,
                        state["skipped"],
                    )
                if state["skipped"] > tr["max_nonfinite"]:
                    raise NonFiniteLossError(
                        f"{state['skipped']} steps with a non-finite loss or gradients (train.max_nonfinite="
                        f"{tr['max_nonfinite']}); last at step {step}. Lower optim.lr or check the data."
                    )
            dt = time.time() - t0
            logger.step(
                {
                    "step": step,
                    "loss": state["loss"] if state["loss"] is not None else float("nan"),
                    "lr": float(engine.get_lr()[0]),
                    "samples": int(samples),
                    "samples_per_s": samples / dt,
                    "grad_norm": grad_norm(engine),
                    "skipped": state["skipped"],
                    "epoch": state["epoch"],
                    "time_s": dt,
                }
            )
            every = tr["checkpoint_every"]
            if every and step % every == 0 and step < tr["max_steps"]:
                ckpt.save(
                    engine,
                    root,
                    f"step-{step:08d}",
                    state,
                    exclude_frozen=cfg["deepspeed"]["exclude_frozen"],
                    keep=tr["keep_checkpoints"],
                )
        if found is None or found.name != "final":
            ckpt.save(engine, root, "final", state, exclude_frozen=False)
    finally:
        stream.close()  # logs the data report of the epoch in progress
        logger.close()
    changed = check_frozen(frozen_before, digests(engine.module, frozen))
    if changed:
        raise FrozenWeightsChanged(f"stage {cfg['stage']}: frozen parameters changed: {changed[:10]}")
    unchanged = check_trained(trained_before, digests(engine.module, trainable))
    suspicious = unexpected_unchanged(unchanged)
    if suspicious and rank == 0 and state["step"] > start_step:
        log.warning(
            "stage %s: %d trainable parameters did not change in %d steps (no gradient reached "
            "them, or every step was skipped): %s",
            cfg["stage"],
            len(suspicious),
            state["step"] - start_step,
            ", ".join(suspicious[:10]),
        )
    _export(engine, model, out / "model", rank)
    summary = {
        "stage": cfg["stage"],
        "steps": state["step"],
        "resumed_at": start_step if found else None,
        "skipped_steps": state["skipped"],
        "time_s": round(time.time() - t_start, 3),
        "final_loss": state["loss"],
        "samples": state["samples"],
        "world_size": world,
        "device": str(engine.device),
        "trainable_params": count(trainable),
        "frozen_params": count(frozen),
        "frozen_unchanged": True,
        "trainable_unchanged": unchanged,
        "output": str(out),
        "audio_norm_init": norm_init,
        "feature_cache": cache.stats() if (cache := getattr(engine.module, "feature_cache", None)) else None,
    }
    write_summary(out, summary, rank)
    if hasattr(engine, "destroy"):
        engine.destroy()
    del engine
    gc.collect()
    return summary


def main(argv: list[str] | None = None) -> int:
    """The old name of ``af2 train`` (training/cli/train.py parses the flags)."""
    from af2.cli import legacy_main

    return legacy_main("train", "python -m training.train", argv)


if __name__ == "__main__":
    raise SystemExit(main())
