"""Shared benchmark helpers: the device to benchmark on and a device sync."""

from __future__ import annotations

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device() -> torch.device:
    import af2

    return torch.device("cuda" if af2.build_info()["cuda_available"] else "cpu")
