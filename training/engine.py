"""DeepSpeed: process group, per-stage config (ZeRO, precision, AdamW, clipping, schedule), engine.

Works unchanged on GPUs (nccl, bf16 by default) and on the CPU (``DS_ACCELERATOR=cpu`` is set
here when no GPU is visible; gloo; fp32). A standalone ``python -m training.train`` is a
1-process world on 127.0.0.1; under ``torchrun`` / ``deepspeed`` the launcher's env is used.
"""

from __future__ import annotations

import math
import os
import socket

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_distributed() -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed (once); returns (rank, world size)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed
    import torch.distributed as dist

    if torch.cuda.is_available():  # before the NCCL group: its communicator binds to this device
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def use_bf16(cfg: dict) -> bool:
    precision = cfg["deepspeed"]["precision"]
    return precision == "bf16" or (precision == "auto" and torch.cuda.is_available())


def ds_config(cfg: dict) -> dict:
    """The DeepSpeed JSON config of a stage (the scheduler is passed as an object: see lr_lambda)."""
    opt, ds = cfg["optim"], cfg["deepspeed"]
    zero = {"stage": ds["zero_stage"]}
    if ds["zero_stage"] == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)
    return {
        "train_micro_batch_size_per_gpu": 1,  # batches are dynamic; DeepSpeed only needs a number here
        "gradient_accumulation_steps": cfg["train"]["grad_accum"],
        "gradient_clipping": opt["grad_clip"],
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": opt["lr"],
                "betas": list(opt["betas"]),
                "eps": opt["eps"],
                "weight_decay": opt["weight_decay"],
                "torch_adam": True,
            },
        },
        "zero_optimization": zero,
        # check_grad_overflow: a non-finite gradient norm skips the optimizer step (see train.py)
        "bf16": {"enabled": use_bf16(cfg), "check_grad_overflow": True},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(cfg: dict):
    """Multiplier of the base lr at optimizer step t: linear warmup, then cosine / linear decay to
    ``min_lr_ratio`` at ``max_steps`` (or constant)."""
    warmup, total = cfg["optim"]["warmup_steps"], cfg["train"]["max_steps"]
    floor, kind = cfg["optim"]["min_lr_ratio"], cfg["optim"]["schedule"]

    def f(t: int) -> float:
        if t < warmup:
            return (t + 1) / (warmup + 1)
        if kind == "constant" or total <= warmup:
            return 1.0
        frac = min(1.0, (t - warmup) / max(1, total - warmup))
        decay = 0.5 * (1 + math.cos(math.pi * frac)) if kind == "cosine" else 1 - frac
        return floor + (1 - floor) * decay

    return f


def build_engine(module: torch.nn.Module, params: list, cfg: dict):
    """A fresh engine over ``params`` (the stage's trainable set; everything else has
    requires_grad False before this call and is never unfrozen afterwards)."""
    import deepspeed

    if use_bf16(cfg):
        # DeepSpeed casts parameters to bf16, not buffers: BatchNorm would then see bf16 input and
        # weights with fp32 running statistics and fail ("expected scalar type BFloat16 but found
        # Float"). Other float buffers (RoPE inverse frequencies) stay fp32.
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                for name, buf in m.named_buffers(recurse=False):
                    if buf.is_floating_point():
                        setattr(m, name, buf.to(torch.bfloat16))

    def scheduler(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))

    engine, _, _, _ = deepspeed.initialize(
        model=module, model_parameters=params, config=ds_config(cfg), lr_scheduler=scheduler
    )
    return engine
