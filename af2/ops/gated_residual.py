"""Tanh-gated residual ``x + tanh(gate) * y`` in one pass (forward and backward)."""

from __future__ import annotations

import torch

from af2.ops._checks import check_same_device

__all__ = ["gated_residual"]


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``x + tanh(gate) * y``, the Flamingo gated residual, as one fused op.

    Args:
        x, y: same shape, dtype (float32 / float16 / bfloat16 / float64) and device.
        gate: a one-element float tensor (e.g. a ``(1,)`` parameter) on x's device or the CPU.

    Returns:
        Tensor of x's shape and dtype, contiguous. Differentiable in x, y and gate.
    """
    return torch.ops.af2.gated_residual(x, y, gate)


@torch.library.register_fake("af2::gated_residual")
def _fake(x, y, gate):
    check_same_device("gated_residual", [("x", x), ("y", y), ("gate", gate)], cpu_ok=("gate",))
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("af2::gated_residual_backward")
def _fake_backward(grad, y, gate):
    check_same_device("gated_residual", [("grad", grad), ("y", y), ("gate", gate)], cpu_ok=("gate",))
    return torch.empty_like(y, memory_format=torch.contiguous_format), torch.empty_like(gate)


def _setup_context(ctx, inputs, output):
    x, y, gate = inputs
    ctx.save_for_backward(y, gate)


def _backward(ctx, grad):
    y, gate = ctx.saved_tensors
    grad_y, grad_gate = torch.ops.af2.gated_residual_backward(grad, y, gate)
    return grad, grad_y, grad_gate


torch.library.register_autograd("af2::gated_residual", _backward, setup_context=_setup_context)
