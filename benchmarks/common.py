"""Shared benchmark helpers: device sync, timing-independent bookkeeping of af2 vs baseline."""
from __future__ import annotations

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device() -> torch.device:
    import af2

    return torch.device("cuda" if af2.build_info()["cuda_available"] else "cpu")


def rope_bytes(B: int, S: int, H: int, D: int, dtype: torch.dtype, mode: str) -> int:
    """Fewest bytes an op of this shape must move: x read once and written once per pass."""
    one_pass = 2 * B * S * H * D * torch.tensor([], dtype=dtype).element_size()
    return one_pass * (2 if mode == "fwd+bwd" else 1)
