"""af2.ops.gated_residual: x + tanh(gate) * y, fused forward and backward."""

from __future__ import annotations

import pytest
import torch

from af2 import reference as R
from af2.ops import gated_residual
from tests.conftest import FLOAT_DTYPES, TOLERANCES


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3, 37, 65), (1,), (2, 4097)])
def test_matches_oracle_forward_and_backward(device, dtype, shape):
    torch.manual_seed(0)
    x = torch.randn(shape, device=device).to(dtype).requires_grad_()
    y = torch.randn(shape, device=device).to(dtype).requires_grad_()
    gate = torch.tensor([0.7], device=device, requires_grad=True)
    out = gated_residual(x, y, gate)
    x64, y64, g64 = (t.detach().double().requires_grad_() for t in (x, y, gate))
    ref = R.gated_residual(x64, y64, g64)
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])
    grad = torch.randn_like(out)
    gx, gy, gg = torch.autograd.grad(out, (x, y, gate), grad)
    rx, ry, rg = torch.autograd.grad(ref, (x64, y64, g64), grad.double())
    assert torch.equal(gx, grad)
    torch.testing.assert_close(gy.double(), ry, **TOLERANCES[dtype])
    assert gg.dtype == gate.dtype and gg.shape == gate.shape
    torch.testing.assert_close(gg.double(), rg, rtol=1e-4 if dtype != torch.float64 else 1e-10, atol=1e-4)


def test_zero_gate_is_identity(device):
    x = torch.randn(4, 5, device=device)
    assert torch.equal(gated_residual(x, torch.randn_like(x), torch.zeros(1, device=device)), x)


def test_gradcheck(device):
    x, y = (torch.randn(3, 7, device=device, dtype=torch.float64, requires_grad=True) for _ in range(2))
    gate = torch.tensor([-0.4], device=device, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gated_residual, (x, y, gate))


def test_opcheck_and_compile(device):
    x, y = (torch.randn(3, 7, device=device, requires_grad=True) for _ in range(2))
    gate = torch.tensor([0.2], device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.af2.gated_residual.default, (x, y, gate))
    torch.library.opcheck(
        torch.ops.af2.gated_residual_backward.default, (torch.randn_like(x), y.detach(), gate.detach())
    )
    torch._dynamo.reset()
    f = torch.compile(
        lambda a, b, g: gated_residual(a.relu(), b, g).sum(),
        fullgraph=True,
        backend="aot_eager" if device.type == "cpu" else "inductor",
    )
    out = f(x, y, gate)
    torch.testing.assert_close(out, gated_residual(x.relu(), y, gate).sum())
    torch.autograd.grad(out, (x, y, gate))


def test_bad_input_is_named(device):
    x = torch.randn(3, 4, device=device)
    with pytest.raises(ValueError, match=r"y must have x's sizes \[3, 4\], got \[4, 3\]"):
        gated_residual(x, x.t(), torch.zeros(1, device=device))
    with pytest.raises(ValueError, match=r"gate must hold one element, got sizes \[2\]"):
        gated_residual(x, x, torch.zeros(2, device=device))
    with pytest.raises(ValueError, match=r"y has dtype Half but x has Float"):
        gated_residual(x, x.half(), torch.zeros(1, device=device))
    with pytest.raises(ValueError, match=r"x must be float32, float16, bfloat16 or float64, got Long"):
        gated_residual(x.long(), x.long(), torch.zeros(1, device=device))
