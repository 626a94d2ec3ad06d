"""Argument checks shared by the Python side of the ops: devices in the fake (meta) kernels and
integer ranges before a narrowing cast.

A meta tensor beside CPU or CUDA tensors dispatches to an op's fake kernel (the Meta key wins),
which would otherwise return an uninitialised tensor on the first argument's device. The fake
kernels therefore check devices the way the C++ bindings do (bindings/*_args.h), with the same
message: ``"<op>: <name> is on <device> but <first> is on <device>"``. Under FakeTensorMode and
torch.compile every fake tensor reports its real device, so consistent inputs pass.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch._subclasses.fake_tensor import FakeTensor

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def check_same_device(
    op: str, tensors: Iterable[tuple[str, Optional[torch.Tensor]]], cpu_ok: Iterable[str] = ()
) -> None:
    """ValueError unless every tensor is on the first one's device. None entries are skipped;
    the names in ``cpu_ok`` (one-element tensors the kernels read or copy over) may also be on
    the CPU."""
    cpu_ok = set(cpu_ok)
    first_name, first = None, None
    for name, t in tensors:
        if t is None:
            continue
        if first is None:
            first_name, first = name, t
            continue
        if t.device != first.device and not (name in cpu_ok and t.device.type == "cpu"):
            raise ValueError(f"{op}: {name} is on {t.device} but {first_name} is on {first.device}")


def values_checkable(t: torch.Tensor) -> bool:
    """True where reading t's values costs no device sync and no graph break: a real CPU tensor
    outside torch.compile tracing."""
    return t.device.type == "cpu" and not torch.compiler.is_compiling() and not isinstance(t, FakeTensor)


def checked_int32(op: str, name: str, t: torch.Tensor, low: int = INT32_MIN, high: int = INT32_MAX) -> torch.Tensor:
    """An int64 tensor narrowed to int32, after checking (CPU) that every value lies in
    [low, high]; out-of-range values raise ValueError naming the argument, the value and its
    index. Where values cannot be read without a device sync (CUDA, tracing), values outside the
    int32 range saturate instead of wrapping around. Other dtypes are returned unchanged (the op
    checks them)."""
    if not isinstance(t, torch.Tensor) or t.dtype != torch.int64:
        return t
    if values_checkable(t) and t.numel():
        bad = (t < low) | (t > high)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{op}: {name} must lie in [{low}, {high}] (the kernels' int32 index range), "
                f"got {int(t[idx])} at {list(idx)} (sizes {list(t.shape)})"
            )
        return t.to(torch.int32)
    return t.clamp(INT32_MIN, INT32_MAX).to(torch.int32)
