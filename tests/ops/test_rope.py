"""af2.ops.rope_windowed / rope_windowed_qk against the float64 oracle and the spec."""

from __future__ import annotations

import math

import pytest
import torch

from af2 import reference as R
from af2.ops import rope_windowed, rope_windowed_qk
from tests.conftest import FLOAT_DTYPES, TOLERANCES


def _offsets_with_gaps(B, W, window_size, dtype=torch.int64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    gaps = torch.randint(0, 3 * window_size, (B, W), generator=g)
    starts = torch.cumsum(gaps + window_size, dim=1) - window_size
    return starts.to(dtype=dtype, device=device)


def _oracle(x, **kw):
    return R.rope_windowed(x.detach().double(), **kw)


def _spec_rope(x, window_size, offsets, base, rd, interleaved):
    """docs/design.md's formula written element by element with complex numbers (checks the oracle)."""
    B, S, H, D = x.shape
    out = x.clone()
    for b in range(B):
        for s in range(S):
            p = s if offsets is None else int(offsets[b, s // window_size]) + s % window_size
            for i in range(rd // 2):
                theta = torch.tensor(float(base) ** (-2 * i / rd), dtype=torch.float32)
                angle = float(torch.tensor(float(p), dtype=torch.float32) * theta)
                a, c = (2 * i, 2 * i + 1) if interleaved else (i, i + rd // 2)
                z = complex(float(x[b, s, 0, a]), float(x[b, s, 0, c])) * complex(math.cos(angle), math.sin(angle))
                out[b, s, 0, a], out[b, s, 0, c] = z.real, z.imag
    return out


@pytest.mark.parametrize("interleaved", [False, True])
def test_oracle_matches_spec_formula(interleaved):
    x = torch.randn(2, 6, 1, 10, dtype=torch.float64)
    off = torch.tensor([[5, 40], [0, 1000]])
    ref = R.rope_windowed(x, window_size=3, window_offsets=off, base=100.0, rotary_dim=8, interleaved=interleaved)
    torch.testing.assert_close(ref, _spec_rope(x, 3, off, 100.0, 8, interleaved), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("case", ["odd", "af2_like", "full_rotary"])
def test_matches_float64_oracle(device, dtype, interleaved, case):
    torch.manual_seed(0)
    if case == "odd":
        B, W, ws, H, D, rd = 2, 3, 37, 3, 72, 40
    elif case == "af2_like":
        B, W, ws, H, D, rd = 2, 3, 64, 8, 256, 128
    else:
        B, W, ws, H, D, rd = 3, 5, 4, 2, 16, None
    x = torch.randn(B, W * ws, H, D, device=device).to(dtype)
    off = _offsets_with_gaps(B, W, ws, device=device)
    for offsets in (None, off):
        out = rope_windowed(x, window_size=ws, window_offsets=offsets, rotary_dim=rd, interleaved=interleaved)
        assert out.dtype == dtype and out.shape == x.shape and out.is_contiguous()
        ref = _oracle(x, window_size=ws, window_offsets=offsets, rotary_dim=rd, interleaved=interleaved)
        torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])


def test_passthrough_channels_are_copied_bit_exactly(device):
    x = torch.randn(2, 8, 3, 24, device=device, dtype=torch.bfloat16)
    out = rope_windowed(x, window_size=4, rotary_dim=8)
    assert torch.equal(out[..., 8:], x[..., 8:])


def test_position_zero_is_identity(device):
    x = torch.randn(1, 4, 2, 16, device=device)
    out = rope_windowed(x, window_size=4)
    assert torch.equal(out[:, 0], x[:, 0])


@pytest.mark.parametrize("offsets_dtype", [torch.int32, torch.int64])
def test_offsets_int32_and_int64_agree(device, offsets_dtype):
    x = torch.randn(2, 12, 2, 32, device=device)
    off = _offsets_with_gaps(2, 3, 4, device=device)
    a = rope_windowed(x, window_size=4, window_offsets=off)
    b = rope_windowed(x, window_size=4, window_offsets=off.to(offsets_dtype))
    assert torch.equal(a, b)


def test_default_offsets_equal_explicit_plain_positions(device):
    x = torch.randn(2, 12, 2, 32, device=device)
    off = (torch.arange(3, device=device) * 4).expand(2, 3).contiguous()
    assert torch.equal(rope_windowed(x, window_size=4), rope_windowed(x, window_size=4, window_offsets=off))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_non_contiguous_inputs(device, dtype):
    torch.manual_seed(1)
    base = torch.randn(2, 3, 20, 40, device=device).to(dtype)  # (B, H, S, D)
    views = {
        "transposed": base.transpose(1, 2),  # (B, S, H, D), strides permuted
        "sliced_d": torch.randn(2, 20, 3, 50, device=device).to(dtype)[..., 5:45],
        "strided_d": torch.randn(2, 20, 3, 80, device=device).to(dtype)[..., ::2],
    }
    for name, x in views.items():
        assert not x.is_contiguous(), name
        out = rope_windowed(x, window_size=5, rotary_dim=24)
        ref = _oracle(x, window_size=5, rotary_dim=24)
        torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype], msg=name)
        assert torch.equal(out, rope_windowed(x.contiguous(), window_size=5, rotary_dim=24)), name


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("interleaved", [False, True])
def test_qk_matches_two_single_calls(device, dtype, interleaved):
    q = torch.randn(2, 12, 4, 40, device=device).to(dtype)
    k = torch.randn(2, 12, 1, 40, device=device).to(dtype).transpose(1, 2).contiguous().transpose(1, 2)
    off = _offsets_with_gaps(2, 3, 4, device=device)
    kw = dict(window_size=4, window_offsets=off, rotary_dim=24, interleaved=interleaved)
    qo, ko = rope_windowed_qk(q, k, **kw)
    assert torch.equal(qo, rope_windowed(q, **kw))
    assert torch.equal(ko, rope_windowed(k, **kw))


def test_backward_is_inverse_rotation(device):
    x = torch.randn(2, 8, 2, 16, device=device, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(x)
    (grad,) = torch.autograd.grad(rope_windowed(x, window_size=4), x, g)
    # The rotation is orthogonal: the backward rotates back.
    torch.testing.assert_close(rope_windowed(grad, window_size=4), g)


@pytest.mark.parametrize("interleaved", [False, True])
def test_gradcheck_float64(device, interleaved):
    x = torch.randn(2, 6, 2, 10, device=device, dtype=torch.float64, requires_grad=True)
    off = _offsets_with_gaps(2, 2, 3, device=device)
    f = lambda t: rope_windowed(t, window_size=3, window_offsets=off, rotary_dim=6, interleaved=interleaved)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_gradcheck_qk_float64(device):
    q = torch.randn(1, 6, 2, 8, device=device, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 6, 1, 8, device=device, dtype=torch.float64, requires_grad=True)
    f = lambda a, b: rope_windowed_qk(a, b, window_size=2, rotary_dim=4)
    assert torch.autograd.gradcheck(f, (q, k))
    # Only one output used: the other's gradient arrives as zeros.
    assert torch.autograd.gradcheck(lambda a, b: f(a, b)[1], (q, k))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_gradients_match_oracle(device, dtype):
    x = torch.randn(2, 12, 3, 24, device=device).to(dtype).requires_grad_()
    g = torch.randn_like(x)
    off = _offsets_with_gaps(2, 3, 4, device=device)
    kw = dict(window_size=4, window_offsets=off, rotary_dim=16)
    (grad,) = torch.autograd.grad(rope_windowed(x, **kw), x, g)
    x64 = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(R.rope_windowed(x64, **kw), x64, g.double())
    torch.testing.assert_close(grad.double(), ref, **TOLERANCES[dtype])


def test_opcheck(device):
    x = torch.randn(2, 6, 3, 10, device=device, requires_grad=True)
    k = torch.randn(2, 6, 1, 10, device=device, requires_grad=True)
    off = torch.tensor([[0, 9], [3, 100]], device=device, dtype=torch.int32)
    torch.library.opcheck(torch.ops.af2.rope_windowed.default, (x, 3, off, 4096.0, 8, False, False))
    torch.library.opcheck(torch.ops.af2.rope_windowed.default, (x, 3, None, 10000.0, 10, True, True))
    torch.library.opcheck(torch.ops.af2.rope_windowed_qk.default, (x, k, 3, off, 4096.0, 8, False, False))


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    x = torch.randn(2, 8, 2, 16, device=device, requires_grad=True)
    q = torch.randn(2, 8, 4, 16, device=device, requires_grad=True)
    off = torch.tensor([[0, 10], [4, 50]], device=device)

    def f(x, q, off):
        a = rope_windowed(x * 2, window_size=4, window_offsets=off, rotary_dim=8)
        b, c = rope_windowed_qk(q, x, window_size=4, window_offsets=off, interleaved=True)
        return (a.sum(dim=2) * b.sum(dim=2)).sum() + c.square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager" if device.type == "cpu" else "inductor")
    out = compiled(x, q, off)
    ref = f(x, q, off)
    torch.testing.assert_close(out, ref)
    g_c = torch.autograd.grad(out, (x, q))
    g_e = torch.autograd.grad(ref, (x, q))
    for a, b in zip(g_c, g_e):
        torch.testing.assert_close(a, b)


def test_torch_compile_inductor_cpu():
    torch._dynamo.reset()
    x = torch.randn(2, 8, 2, 16)
    f = torch.compile(lambda t: rope_windowed(t.relu(), window_size=4) + 1, fullgraph=True)
    torch.testing.assert_close(f(x), rope_windowed(x.relu(), window_size=4) + 1)


def test_empty_batch(device):
    x = torch.randn(0, 8, 2, 16, device=device)
    assert rope_windowed(x, window_size=4).shape == x.shape


# ---- bad input: each error names the argument and the sizes it got ---------------------------


def _bad_cases(device):
    x = torch.randn(2, 12, 3, 16, device=device)
    return [
        (
            "S must be a multiple of window_size",
            r"window_size.*S = 12|S = 12.*window_size = 5",
            lambda: rope_windowed(x, window_size=5),
        ),
        ("odd rotary_dim", r"rotary_dim.*even.*rotary_dim = 7", lambda: rope_windowed(x, window_size=4, rotary_dim=7)),
        (
            "rotary_dim > D",
            r"rotary_dim must be <= D, got rotary_dim = 18 and D = 16",
            lambda: rope_windowed(x, window_size=4, rotary_dim=18),
        ),
        (
            "offsets wrong shape",
            r"window_offsets must be \(B, W\) = \(2, 3\), got sizes \[2, 4\]",
            lambda: rope_windowed(x, window_size=4, window_offsets=torch.zeros(2, 4, dtype=torch.long, device=device)),
        ),
        (
            "offsets wrong dtype",
            r"window_offsets must be int32 or int64, got Float",
            lambda: rope_windowed(x, window_size=4, window_offsets=torch.zeros(2, 3, device=device)),
        ),
        (
            "integer x",
            r"x must be float32, float16, bfloat16 or float64, got Int with sizes \[2, 12, 3, 16\]",
            lambda: rope_windowed(x.int(), window_size=4),
        ),
        (
            "wrong rank",
            r"x must be \(B, S, H, D\), got 3 dims with sizes \[2, 12, 48\]",
            lambda: rope_windowed(x.flatten(2), window_size=4),
        ),
        (
            "q/k mismatch",
            r"k must share B, S and D with q, got \[2, 12, 3, 8\] and \[2, 12, 3, 16\]",
            lambda: rope_windowed_qk(x, x[..., :8], window_size=4),
        ),
        ("q/k dtype", r"k has dtype Half but q has Float", lambda: rope_windowed_qk(x, x.half(), window_size=4)),
        ("window_size 0", r"window_size must be positive, got 0", lambda: rope_windowed(x, window_size=0)),
    ]


@pytest.mark.parametrize("idx", range(10))
def test_bad_input_is_named(device, idx):
    name, pattern, call = _bad_cases(device)[idx]
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("offsets_dtype", [torch.int32, torch.int64])
def test_bad_offsets_values(device, offsets_dtype):
    """Out-of-range positions are refused on every backend (CUDA: one aminmax + a 16-byte copy)."""
    x = torch.randn(2, 12, 3, 16, device=device)
    off = lambda rows: torch.tensor(rows, dtype=offsets_dtype, device=device)
    for call in (
        lambda o: rope_windowed(x, window_size=4, window_offsets=o),
        lambda o: rope_windowed_qk(x, x[:, :, :1], window_size=4, window_offsets=o),
    ):
        with pytest.raises(ValueError, match=r"window_offsets must be >= 0.*sizes \[2, 3\]"):
            call(off([[0, -4, 8], [0, 4, 8]]))
        with pytest.raises(ValueError, match=r"below 2\^24"):
            call(off([[0, 4, 2**24], [0, 4, 8]]))
        with pytest.raises(ValueError, match=r"below 2\^24"):  # the window's last token at 2^24
            call(off([[0, 4, 8], [0, 4, 2**24 - 3]]))
        call(off([[0, 4, 2**24 - 4], [0, 4, 8]]))  # the last exact position: accepted
    g = torch.randn_like(x, requires_grad=True)  # the backward checks too
    with pytest.raises(ValueError, match=r"window_offsets must be >= 0"):
        torch.ops.af2.rope_windowed(g, 4, off([[0, -1, 8], [0, 4, 8]]), 4096.0, 16, False, True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_capture_skips_the_offsets_check():
    """Inside a CUDA graph capture the range check (a device-to-host sync) is skipped; the captured
    op replays with new offsets and matches eager."""
    x = torch.randn(2, 12, 3, 16, device="cuda")
    off = _offsets_with_gaps(2, 3, 4, device="cuda")
    kw = dict(window_size=4, rotary_dim=8)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up outside the capture
        rope_windowed(x, window_offsets=off, **kw)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = rope_windowed(x, window_offsets=off, **kw)
    off.copy_(_offsets_with_gaps(2, 3, 4, device="cuda", seed=1))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, rope_windowed(x, window_offsets=off, **kw), rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_offsets_on_other_device_is_named():
    x = torch.randn(2, 12, 3, 16, device="cuda")
    with pytest.raises(ValueError, match=r"window_offsets is on cpu but x is on cuda"):
        rope_windowed(x, window_size=4, window_offsets=torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_cuda_matches_cpu_on_af2_shape(dtype):
    torch.manual_seed(3)
    x = torch.randn(2, 1920, 8, 256).to(dtype)
    off = _offsets_with_gaps(2, 30, 64)
    kw = dict(window_size=64, window_offsets=off, rotary_dim=128)
    out = rope_windowed(x.cuda(), **{**kw, "window_offsets": off.cuda()}).cpu()
    torch.testing.assert_close(out.double(), _oracle(x, **kw), **TOLERANCES[dtype])
    # Deterministic: a second launch gives the same bits.
    assert torch.equal(out, rope_windowed(x.cuda(), **{**kw, "window_offsets": off.cuda()}).cpu())


def test_bad_offsets_name_the_value():
    """The range error says which offset is out of range, for int64 offsets past int32 too."""
    x = torch.randn(1, 4, 1, 4)
    with pytest.raises(ValueError, match=r"window_offsets must be >= 0, got -6"):
        rope_windowed(x, window_size=2, window_offsets=torch.tensor([[0, -6]]))
    with pytest.raises(ValueError, match=r"window_offsets holds 4294967298 .*window_size = 2"):
        rope_windowed(x, window_size=2, window_offsets=torch.tensor([[2**32 + 2, 0]]))
