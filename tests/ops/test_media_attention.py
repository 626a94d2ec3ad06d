"""af2.ops.media_cross_attention and media_key_ranges against the float64 oracle."""

from __future__ import annotations

import pytest
import torch

from af2 import reference as R
from af2.ops import media_cross_attention, media_key_ranges
from tests.conftest import FLOAT_DTYPES, TOLERANCES

# Attention accumulates over keys and Dh in float32: a little more room than elementwise ops.
ATTN_TOL = {**TOLERANCES, torch.float32: dict(rtol=2e-5, atol=2e-5)}


def make_case(pattern: str, device, dtype=torch.float32, seed=0, H=3, D=16):
    """(q, k, v, key_start, key_end, key_padding_mask) for a named mask pattern."""
    g = torch.Generator().manual_seed(seed)
    B, Lq, T, n = 3, 41, 3, 23  # Lk = 69: not a multiple of any tile
    loc = torch.zeros(B, Lq, dtype=torch.bool)
    counts = torch.full((B, T), n)
    pad = None
    immediate = True
    if pattern == "text_before_media":
        loc[:, 20] = True  # tokens 0..19 see nothing
    elif pattern in ("immediate", "all_previous"):
        loc[:, [0, 15, 30]] = True
        immediate = pattern == "immediate"
    elif pattern == "padded_windows":
        loc[:, [2, 25]] = True
        counts = torch.tensor([[23, 10, 23], [5, 23, 0], [23, 23, 23]])
        pad = torch.arange(n)[None, None, :] < counts[:, :, None]
        pad = pad.reshape(B, T * n)
    elif pattern == "decode":
        Lq = 1
        loc = torch.zeros(B, 1, dtype=torch.bool)
        loc[:2, 0] = True  # batch 2 sees no media
    elif pattern == "empty_ranges":
        loc[:, 10] = True
        counts = torch.zeros(B, T, dtype=torch.long)  # media with no valid token
    elif pattern == "mixed":
        loc[0, 30] = True  # mostly text before media
        loc[1, [0, 5, 6]] = True  # back-to-back media
        counts = torch.tensor([[23, 23, 23], [1, 0, 17], [23, 23, 23]])
        pad = torch.rand(B, T * n, generator=g) > 0.3
        immediate = False
    else:
        raise ValueError(pattern)
    ks, ke = media_key_ranges(loc, counts, immediate, slot_size=n)
    Lk = T * n
    mk = lambda L: torch.randn(B, L, H, D, generator=g).to(dtype).to(device)
    q, k, v = mk(Lq), mk(Lk), mk(Lk)
    return q, k, v, ks.to(device), ke.to(device), None if pad is None else pad.to(device)


PATTERNS = ["text_before_media", "immediate", "all_previous", "padded_windows", "decode", "empty_ranges", "mixed"]


def _oracle(q, k, v, ks, ke, pad, scale=None):
    return R.media_cross_attention(
        q.double(), k.double(), v.double(), key_start=ks, key_end=ke, key_padding_mask=pad, scale=scale
    )


def test_oracle_matches_open_flamingo_semantics():
    """The eager oracle: a plain softmax over exactly the allowed keys, zero rows elsewhere."""
    q, k, v, ks, ke, pad = make_case("padded_windows", "cpu", torch.float64)
    out = R.media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            keys = [j for j in range(ks[b, i], ke[b, i]) if pad is None or pad[b, j]]
            for h in range(q.shape[2]):
                if not keys:
                    assert torch.equal(out[b, i, h], torch.zeros_like(out[b, i, h]))
                    continue
                s = torch.stack([q[b, i, h] @ k[b, j, h] for j in keys]) * q.shape[-1] ** -0.5
                ref = (s.softmax(0)[:, None] * v[b, keys, h]).sum(0)
                torch.testing.assert_close(out[b, i, h], ref)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_forward_matches_oracle(device, dtype, pattern):
    q, k, v, ks, ke, pad = make_case(pattern, device, dtype)
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    assert out.shape == q.shape and out.dtype == dtype
    torch.testing.assert_close(out.double(), _oracle(q, k, v, ks, ke, pad), **ATTN_TOL[dtype])
    empty = (ke <= ks).to(device)
    if pad is not None:  # a range may hold only padded keys
        j = torch.arange(k.shape[1], device=device)
        inside = (j >= ks[..., None]) & (j < ke[..., None]) & pad[:, None, :]
        empty = ~inside.any(-1)
    assert torch.equal(out[empty], torch.zeros_like(out[empty])), "queries with no key must output exactly 0"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("pattern", ["immediate", "padded_windows", "mixed", "decode"])
def test_gradients_match_oracle(device, dtype, pattern):
    q, k, v, ks, ke, pad = make_case(pattern, device, dtype, seed=1)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad, scale=0.3)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = _oracle(q64, k64, v64, ks, ke, pad, scale=0.3)
    refs = torch.autograd.grad(ref, (q64, k64, v64), g.double())
    tol = {torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}.get(
        dtype, ATTN_TOL[dtype]
    )
    for name, a, b in zip("qkv", grads, refs):
        torch.testing.assert_close(a.double(), b, **tol, msg=lambda m: f"grad {name}: {m}")


def test_empty_queries_get_zero_gradient(device):
    q, k, v, ks, ke, pad = make_case("text_before_media", device, torch.float64)
    q.requires_grad_()
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert torch.equal(grad[:, :20], torch.zeros_like(grad[:, :20]))
    assert not torch.isnan(grad).any()


def test_gradcheck_float64(device):
    q, k, v, ks, ke, pad = make_case("mixed", device, torch.float64, H=2, D=4)
    q, k, v = (t[:, :9].clone().requires_grad_() if t is q else t.clone().requires_grad_() for t in (q, k, v))
    ks, ke = ks[:, :9].contiguous(), ke[:, :9].contiguous()
    f = lambda a, b, c: media_cross_attention(a, b, c, key_start=ks, key_end=ke, key_padding_mask=pad)
    assert torch.autograd.gradcheck(f, (q, k, v))


def test_non_contiguous_kv_views(device):
    """k, v as views of one fused projection (what the block passes), q transposed."""
    torch.manual_seed(0)
    B, Lq, Lk, H, D = 2, 9, 30, 2, 8
    kv = torch.randn(B, Lk, 2, H, D, device=device)
    q = torch.randn(B, H, Lq, D, device=device).transpose(1, 2)
    ks = torch.zeros(B, Lq, dtype=torch.int32, device=device)
    ke = torch.full((B, Lq), Lk, dtype=torch.int32, device=device)
    out = media_cross_attention(q, kv[:, :, 0], kv[:, :, 1], key_start=ks, key_end=ke)
    ref = media_cross_attention(
        q.contiguous(), kv[:, :, 0].contiguous(), kv[:, :, 1].contiguous(), key_start=ks, key_end=ke
    )
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("Lq,Lk", [(0, 5), (4, 0), (0, 0)])
def test_empty_sequences(device, Lq, Lk):
    """No query or no key: an empty or all-zero output, zero gradients, no kernel error."""
    q = torch.randn(2, Lq, 2, 8, device=device, requires_grad=True)
    k, v = (torch.randn(2, Lk, 2, 8, device=device, requires_grad=True) for _ in range(2))
    ks = torch.zeros(2, Lq, dtype=torch.int32, device=device)
    ke = torch.full((2, Lq), Lk, dtype=torch.int32, device=device)
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke)
    assert out.shape == q.shape and torch.equal(out, torch.zeros_like(out))
    for grad, t in zip(torch.autograd.grad((out * 2).sum(), (q, k, v), allow_unused=True), (q, k, v)):
        assert grad is None or torch.equal(grad, torch.zeros_like(t))


def test_int64_ranges_accepted(device):
    q, k, v, ks, ke, pad = make_case("immediate", device)
    a = media_cross_attention(q, k, v, key_start=ks, key_end=ke)
    b = media_cross_attention(q, k, v, key_start=ks.long(), key_end=ke.long())
    assert torch.equal(a, b)


def test_opcheck(device):
    q, k, v, ks, ke, pad = make_case("mixed", device, H=2, D=8)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    torch.library.opcheck(torch.ops.af2.media_cross_attention.default, (q, k, v, ks, ke, pad, 0.35))
    torch.library.opcheck(torch.ops.af2.media_cross_attention.default, (q, k, v, ks, ke, None, 0.35))
    out, lse = torch.ops.af2.media_cross_attention(q, k, v, ks, ke, pad, 0.35)
    torch.library.opcheck(
        torch.ops.af2.media_cross_attention_backward.default,
        (torch.randn_like(out), q.detach(), k.detach(), v.detach(), out.detach(), lse, ks, ke, pad, 0.35),
    )


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    q, k, v, ks, ke, pad = make_case("padded_windows", device, H=2, D=8)
    q, k, v = (t.requires_grad_() for t in (q, k, v))

    def f(q, k, v):
        o = media_cross_attention(q * 2, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
        return (o.square()).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager" if device.type == "cpu" else "inductor")
    out, ref = compiled(q, k, v), f(q, k, v)
    torch.testing.assert_close(out, ref)
    for a, b in zip(torch.autograd.grad(out, (q, k, v)), torch.autograd.grad(ref, (q, k, v))):
        torch.testing.assert_close(a, b)


# ---- media_key_ranges ---------------------------------------------------------------------


def test_media_key_ranges_immediate_and_all():
    loc = torch.tensor([[False, True, False, False, True, False]])
    ks, ke = media_key_ranges(loc, 4)
    assert ks.tolist() == [[0, 0, 0, 0, 4, 4]] and ke.tolist() == [[0, 4, 4, 4, 8, 8]]
    ks, ke = media_key_ranges(loc, 4, only_attend_immediate_media=False)
    assert ks.tolist() == [[0] * 6] and ke.tolist() == [[0, 4, 4, 4, 8, 8]]
    assert ks.dtype == torch.int32


def test_media_key_ranges_per_media_counts_exclude_padding():
    loc = torch.tensor([[True, False, True, False], [False, True, False, False]])
    counts = torch.tensor([[3, 1], [2, 5]])
    ks, ke = media_key_ranges(loc, counts, slot_size=5)
    assert ks.tolist() == [[0, 0, 5, 5], [0, 0, 0, 0]]
    assert ke.tolist() == [[3, 3, 6, 6], [0, 2, 2, 2]]


def test_media_key_ranges_bad_input():
    loc = torch.tensor([[True, True, True]])
    with pytest.raises(ValueError, match=r"3 <audio> tokens but tokens_per_media holds counts for only T = 2"):
        media_key_ranges(loc, torch.tensor([[1, 2]]), slot_size=2)
    with pytest.raises(ValueError, match="slot_size is required"):
        media_key_ranges(loc, torch.tensor([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"media_locations must be \(B, Lq\) bool, got torch.int64"):
        media_key_ranges(loc.long(), 4)


# ---- bad input ------------------------------------------------------------------------------


def _bad(device):
    q, k, v, ks, ke, pad = make_case("immediate", device, H=2, D=8)
    return [
        (
            r"k and v must be \(B, Lk, H, Dh\) with q's B, H and Dh, got q \[3, 41, 2, 8\] and k \[3, 69, 3, 8\]",
            lambda: media_cross_attention(
                q, torch.cat([k, k[:, :, :1]], 2), torch.cat([v, v[:, :, :1]], 2), key_start=ks, key_end=ke
            ),
        ),
        (
            r"k and v must be \(B, Lk, H, Dh\) with q's B, H and Dh, got q \[3, 41, 2, 8\] and k \[3, 69, 2, 4\]",
            lambda: media_cross_attention(q, k[..., :4], v[..., :4], key_start=ks, key_end=ke),
        ),
        (
            r"k and v must have the same sizes, got k \[3, 69, 2, 8\] and v \[3, 68, 2, 8\]",
            lambda: media_cross_attention(q, k, v[:, :68], key_start=ks, key_end=ke),
        ),
        (r"k has dtype Half but q has Float", lambda: media_cross_attention(q, k.half(), v, key_start=ks, key_end=ke)),
        (
            r"q must be float32, float16, bfloat16 or float64, got Int",
            lambda: media_cross_attention(q.int(), k, v, key_start=ks, key_end=ke),
        ),
        (
            r"key_start must be \(B, Lq\) = \(3, 41\), got sizes \[3, 40\]",
            lambda: media_cross_attention(q, k, v, key_start=ks[:, :40], key_end=ke),
        ),
        (r"key_end must be int32, got Float", lambda: media_cross_attention(q, k, v, key_start=ks, key_end=ke.float())),
        (
            r"key_padding_mask must be \(B, Lk\) = \(3, 69\), got sizes \[3, 60\]",
            lambda: media_cross_attention(
                q, k, v, key_start=ks, key_end=ke, key_padding_mask=torch.ones(3, 60, dtype=torch.bool, device=device)
            ),
        ),
        (r"q must be \(B, L, H, Dh\), got 3 dims", lambda: media_cross_attention(q[0], k, v, key_start=ks, key_end=ke)),
    ]


@pytest.mark.parametrize("idx", range(9))
def test_bad_input_is_named(device, idx):
    pattern, call = _bad(device)[idx]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_out_of_bounds_ranges_cpu():
    q, k, v, ks, ke, pad = make_case("immediate", "cpu", H=2, D=8)
    bad_end = ke.clone()
    bad_end[1, 7] = 70
    with pytest.raises(
        ValueError, match=r"0 <= key_start <= key_end <= Lk = 69, got key_start\[1, 7\] = \d+ and key_end\[1, 7\] = 70"
    ):
        media_cross_attention(q, k, v, key_start=ks, key_end=bad_end)
    bad_start = ks.clone()
    bad_start[0, 3] = 5
    bad_start[0, 3] = ke[0, 3] + 1
    with pytest.raises(ValueError, match=r"key_start\[0, 3\] = \d+ and key_end\[0, 3\]"):
        media_cross_attention(q, k, v, key_start=bad_start, key_end=ke)
    neg = ks.clone()
    neg[2, 0] = -1
    with pytest.raises(ValueError, match=r"key_start\[2, 0\] = -1"):
        media_cross_attention(q, k, v, key_start=neg, key_end=ke)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_mismatch_is_named():
    q, k, v, ks, ke, pad = make_case("immediate", "cuda", H=2, D=8)
    with pytest.raises(ValueError, match=r"k is on cpu but q is on cuda"):
        media_cross_attention(q, k.cpu(), v, key_start=ks, key_end=ke)
    with pytest.raises(ValueError, match=r"key_start is on cpu but q is on cuda"):
        media_cross_attention(q, k, v, key_start=ks.cpu(), key_end=ke)


# ---- CUDA: tensor-core and generic (SIMT) backward ------------------------------------------
# AF2_MEDIA_ATTN_BACKWARD=tc (default) runs the tensor-core backward for bf16 / fp16 with head dim
# 64 or 128; =simt forces the generic warp-per-row kernels. Both are checked against float64.

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BACKWARD_PATHS = ["tc", "simt"]
# Elementwise tolerances and a bound on ||grad - ref|| / ||ref||: the tensor-core backward rounds
# P and dS to the input dtype (as FlashAttention-2 does), on top of rounding the gradients.
TC_GRAD_TOL = {torch.bfloat16: (dict(rtol=3e-2, atol=3e-2), 1e-2), torch.float16: (dict(rtol=5e-3, atol=5e-3), 2e-3)}


def _poison_cuda_cache():
    """Leave NaN-filled blocks in the caching allocator's small and large pools, so that an
    output element a kernel forgets to write shows up as NaN rather than as a stale value."""
    bufs = [torch.full((128 * 1024,), float("nan"), device="cuda") for _ in range(32)]
    bufs.append(torch.full((16 << 20,), float("nan"), device="cuda"))
    del bufs


def _check_grads(q, k, v, ks, ke, pad, dtype, scale=None, seed=0):
    """Gradients of af2 against the float64 oracle; exact zeros for queries with no key."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad, scale=scale)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    _poison_cuda_cache()
    grads = torch.autograd.grad(out, (q, k, v), g)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    refs = torch.autograd.grad(_oracle(q64, k64, v64, ks, ke, pad, scale=scale), (q64, k64, v64), g.double())
    tol, rel_max = TC_GRAD_TOL[dtype]
    for name, a, b in zip("qkv", grads, refs):
        assert not a.isnan().any(), f"grad {name} has NaN (an unwritten or 0 * inf element)"
        rel = ((a.double() - b).norm() / b.norm().clamp_min(1e-30)).item()
        assert rel < rel_max, f"grad {name}: relative error {rel:.2e} >= {rel_max:.0e}"
        torch.testing.assert_close(a.double(), b, **tol, msg=lambda m: f"grad {name}: {m}")
    j = torch.arange(k.shape[1], device=k.device)
    inside = (j >= ks[..., None].long()) & (j < ke[..., None].long())
    if pad is not None:
        inside &= pad[:, None, :]
    empty = ~inside.any(-1)  # (B, Lq)
    assert torch.equal(grads[0][empty], torch.zeros_like(grads[0][empty])), "queries with no key: dq must be 0"
    attended = inside.any(1)  # (B, Lk): keys no query attends get exactly 0
    assert torch.equal(grads[1][~attended], torch.zeros_like(grads[1][~attended]))
    assert torch.equal(grads[2][~attended], torch.zeros_like(grads[2][~attended]))


@needs_cuda
@pytest.mark.parametrize("path", BACKWARD_PATHS)
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_cuda_backward_paths_match_oracle(monkeypatch, pattern, dtype, D, path):
    """Every mask pattern (Lq = 41 and Lk = 69 are not tile multiples; decode has Lq = 1)."""
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
    q, k, v, ks, ke, pad = make_case(pattern, "cuda", dtype, seed=2, H=2, D=D)
    _check_grads(q, k, v, ks, ke, pad, dtype, scale=0.11, seed=3)


@needs_cuda
@pytest.mark.parametrize("path", BACKWARD_PATHS)
@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cuda_backward_random_ranges(monkeypatch, dtype, D, path):
    """Arbitrary per-query ranges over several query and key tiles, empty rows, a random padding
    mask and a fully padded key block."""
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
    gen = torch.Generator().manual_seed(4)
    B, Lq, Lk, H = 2, 150, 333, 3
    a, c = torch.randint(0, Lk + 1, (B, Lq), generator=gen), torch.randint(0, Lk + 1, (B, Lq), generator=gen)
    ks, ke = torch.minimum(a, c), torch.maximum(a, c)
    ke[:, ::7] = ks[:, ::7]  # empty ranges
    ks[0, 60:90], ke[0, 60:90] = 0, Lk  # whole-key-set rows
    pad = torch.rand(B, Lk, generator=gen) > 0.2
    pad[1, 128:192] = False  # a key block with no valid key
    mk = lambda L: torch.randn(B, L, H, D, generator=gen).to(device="cuda", dtype=dtype)
    q, k, v = mk(Lq), mk(Lk), mk(Lk)
    ks, ke, pad = ks.int().cuda(), ke.int().cuda(), pad.cuda()
    _check_grads(q, k, v, ks, ke, pad, dtype, seed=5)


@needs_cuda
@pytest.mark.parametrize("path", BACKWARD_PATHS)
def test_cuda_backward_views(monkeypatch, path):
    """k, v as views of a fused projection and a transposed q (strided operands the tensor-core
    kernels accept) give the gradients of contiguous copies."""
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
    torch.manual_seed(0)
    B, Lq, Lk, H, D = 2, 70, 130, 2, 64
    kv = torch.randn(B, Lk, 2, H, D, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(B, H, Lq, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    ks = torch.zeros(B, Lq, dtype=torch.int32, device="cuda")
    ke = torch.full((B, Lq), Lk, dtype=torch.int32, device="cuda")
    ke[:, :10] = 0
    g = torch.randn(B, Lq, H, D, device="cuda", dtype=torch.bfloat16)

    def grads(q, k, v):
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        return torch.autograd.grad(media_cross_attention(q, k, v, key_start=ks, key_end=ke), (q, k, v), g)

    for a, b in zip(
        grads(q, kv[:, :, 0], kv[:, :, 1]), grads(q.contiguous(), kv[:, :, 0].contiguous(), kv[:, :, 1].contiguous())
    ):
        torch.testing.assert_close(a, b)
    _check_grads(q, kv[:, :, 0], kv[:, :, 1], ks, ke, None, torch.bfloat16)


@needs_cuda
@pytest.mark.parametrize("D", [64, 128])
def test_cuda_backward_paths_differ_only_by_rounding(monkeypatch, D):
    """tc and simt really are two code paths (the tensor-core one rounds P and dS to bf16, so the
    results are close but not bitwise equal), and each is deterministic."""
    q, k, v, ks, ke, pad = make_case("mixed", "cuda", torch.bfloat16, seed=6, H=2, D=D)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    g = torch.randn_like(out)
    grads = {}
    for path in ("tc", "simt", "tc"):
        monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
        got = torch.autograd.grad(out, (q, k, v), g, retain_graph=True)
        if path in grads:
            assert all(torch.equal(a, b) for a, b in zip(got, grads[path])), "the tc backward is not deterministic"
        grads[path] = got
    assert not all(torch.equal(a, b) for a, b in zip(grads["tc"], grads["simt"])), "tc ran the simt kernels"
    for a, b in zip(grads["tc"], grads["simt"]):
        torch.testing.assert_close(a, b, rtol=3e-2, atol=3e-2)


@needs_cuda
def test_cuda_backward_path_variable_is_checked(monkeypatch):
    q, k, v, ks, ke, pad = make_case("immediate", "cuda", torch.bfloat16, H=2, D=64)
    q.requires_grad_()
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke)
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", "wgmma")
    with pytest.raises(ValueError, match=r"AF2_MEDIA_ATTN_BACKWARD must be 'tc' or 'simt', got 'wgmma'"):
        torch.autograd.grad(out.sum(), q)


@needs_cuda
@pytest.mark.parametrize("path", BACKWARD_PATHS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("D", [64, 128, 80])
def test_cuda_tensor_core_shapes(monkeypatch, dtype, D, path):
    """Head dims 64 and 128 (tensor-core path) and 80 (generic path) at AF2-like sizes."""
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
    torch.manual_seed(0)
    B, Lq, Lk, H = 2, 300, 576, 4
    q, k, v = (torch.randn(B, L, H, D, device="cuda", dtype=dtype, requires_grad=True) for L in (Lq, Lk, Lk))
    loc = torch.zeros(B, Lq, dtype=torch.bool, device="cuda")
    loc[0, [5, 150]] = True
    loc[1, 0] = True
    counts = torch.tensor([[288, 100], [200, 288]], device="cuda")
    ks, ke = media_key_ranges(loc, counts, slot_size=288)
    pad = (torch.arange(288, device="cuda")[None, None] < counts[..., None]).reshape(B, Lk)
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    ref = _oracle(q.detach(), k.detach(), v.detach(), ks, ke, pad)
    tol = ATTN_TOL[dtype]
    if D in (64, 128) and dtype == torch.float16:
        # The tensor-core forward rounds P to fp16 before P V: up to u |v| more per output
        # (u = 2^-11; |v| ~ 0.8 on average for these unit normals), beyond the single rounding
        # of ATTN_TOL (seen at 1.2e-4 on an H200). bf16's atol already covers its rounding of P.
        tol = dict(rtol=1e-3, atol=5e-4)
    torch.testing.assert_close(out.double(), ref, **tol)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    refs = torch.autograd.grad(_oracle(q64, k64, v64, ks, ke, pad), (q64, k64, v64), g.double())
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a.double(), b, rtol=3e-2, atol=3e-2)


# ---- integer ranges: checked before the narrowing to int32, never wrapped around ------------


@pytest.mark.parametrize("name,value", [("key_end", 2**32 + 2), ("key_start", -(2**32)), ("key_end", 2**31)])
def test_int64_ranges_outside_int32_are_named(name, value):
    """int64 key_end = 2^32 + 2 used to become 2 after the int32 cast (a silent wrong range)."""
    q, k, v, ks, ke, pad = make_case("immediate", "cpu", H=2, D=8)
    ranges = {"key_start": ks.long(), "key_end": ke.long()}
    ranges[name][1, 4] = value
    with pytest.raises(
        ValueError,
        match=rf"media_cross_attention: {name} must lie in \[-2147483648, 2147483647\].*"
        rf"got {value} at \[1, 4\]",
    ):
        media_cross_attention(q, k, v, **ranges)


def test_int64_ranges_saturate_where_values_are_not_read(monkeypatch):
    """Without a host read (CUDA, tracing) out-of-int32 values saturate instead of wrapping: 2^32 + 2
    stays past Lk (the CPU range check then names it) instead of becoming 2."""
    import af2.ops._checks as checks

    monkeypatch.setattr(checks, "values_checkable", lambda t: False)
    q, k, v, ks, ke, pad = make_case("immediate", "cpu", H=2, D=8)
    ke = ke.long()
    ke[0, 0] = 2**32 + 2
    with pytest.raises(ValueError, match=r"key_end\[0, 0\] = 2147483647"):
        media_cross_attention(q, k, v, key_start=ks, key_end=ke)


def test_media_key_ranges_count_larger_than_slot():
    loc = torch.tensor([[True, False, True]])
    with pytest.raises(ValueError, match=r"tokens_per_media must lie in \[0, slot_size = 4\], got 7 at \[0, 1\]"):
        media_key_ranges(loc, torch.tensor([[4, 7]]), slot_size=4)
    with pytest.raises(ValueError, match=r"tokens_per_media must lie in \[0, slot_size = 4\], got -1 at \[0, 0\]"):
        media_key_ranges(loc, torch.tensor([[-1, 2]]), slot_size=4)
    with pytest.raises(ValueError, match=r"tokens_per_media must lie in \[0, slot_size = 4\], got 5"):
        media_key_ranges(loc, 5, slot_size=4)
    with pytest.raises(ValueError, match=r"tokens_per_media must hold integer counts, got torch.float32"):
        media_key_ranges(loc, torch.tensor([[4.0, 2.0]]), slot_size=4)
    with pytest.raises(ValueError, match=r"slot_size must lie in \[0, 2147483647\], got -4"):
        media_key_ranges(loc, torch.tensor([[1, 2]]), slot_size=-4)


def test_media_key_ranges_int32_overflow():
    """Three media of 2^30 tokens need key indices up to 3 * 2^30 > 2^31 - 1: refused, not wrapped
    to negative ranges."""
    loc = torch.tensor([[True, False, True, True]])
    with pytest.raises(ValueError, match=r"3 media of slot_size = 1073741824 keys overflow the kernels' int32"):
        media_key_ranges(loc, 2**30)
    with pytest.raises(ValueError, match=r"T \* slot_size = 3 \* 1073741824 keys overflow the kernels' int32"):
        media_key_ranges(loc, torch.ones(1, 3, dtype=torch.long), slot_size=2**30)
    ks, ke = media_key_ranges(loc[:, :3], 2**30 - 1)  # two media: the largest range end is 2^31 - 2
    assert ke.tolist() == [[2**30 - 1, 2**30 - 1, 2**31 - 2]] and ks.tolist() == [[0, 0, 2**30 - 1]]


def test_media_key_ranges_clamp_where_values_are_not_read(monkeypatch):
    """The sync-free path (CUDA, tracing) clamps counts to the slot and ends to the int32 range."""
    import af2.ops.media_attention as ma

    monkeypatch.setattr(ma, "values_checkable", lambda t: False)
    loc = torch.tensor([[True, False, True]])
    ks, ke = media_key_ranges(loc, torch.tensor([[9, -3]]), slot_size=4)
    assert ks.tolist() == [[0, 0, 4]] and ke.tolist() == [[4, 4, 4]]
    loc = torch.ones(1, 4, dtype=torch.bool)
    ks, ke = media_key_ranges(loc, 2**30)
    assert ks.min() >= 0 and ke.min() >= 0 and ke.max() == 2**31 - 1


# ---- NaN in, NaN out --------------------------------------------------------------------------
# The contract (stated in media_cross_attention's docstring), for one (batch, head):
#   * a query attends the keys of its range that the padding mask keeps;
#   * if any attended score q.k is NaN (a NaN in its q row or in an attended key's k row), the
#     query's whole output row is NaN, and so are its dq row and the dk and dv rows of every key
#     it attends (as in the dense reference: its softmax row is NaN);
#   * a NaN in v at an attended key makes that channel of the query's output NaN, and its dq row
#     NaN (through rowsum(dO * O));
#   * a NaN q row leaves the outputs and dq rows of the other queries as they were; NaN in k at
#     keys a query does not attend never reaches its output;
#   * a query with no key outputs exactly 0 and gets dq = 0 exactly, whatever NaN q, k or v hold.
# Left open (implementation-defined, as in the dense reference, where 0 * NaN = NaN): what NaN in
# v at keys a query does not attend does to its output, what NaN in k or v at such keys does to
# its gradients, and dk / dv of keys the NaN query does not attend.
#
# One batch, two heads, Lq = 40 queries in four groups of ten, Lk = 70 keys (two 64-key tiles;
# the groups share 32-query blocks, so every group sits beside the others in the kernels' tiles):
#   queries  0..9   no key (key_start = key_end = 0)
#   queries 10..19  keys [0, 30)
#   queries 20..29  keys [30, 70)
#   queries 30..39  keys [5, 65)
# and keys 40..44 padded (key_padding_mask False) for everyone.
NAN_GROUPS = {"empty": range(0, 10), "a": range(10, 20), "b": range(20, 30), "c": range(30, 40)}
NAN_RANGES = {"empty": (0, 0), "a": (0, 30), "b": (30, 70), "c": (5, 65)}
NAN = float("nan")
# Head dims: 8 (generic kernels) and 64 (on CUDA, bf16 / fp16 run the tensor-core kernels).
NAN_D = pytest.mark.parametrize("D", [8, 64])


def _nan_case(device, dtype, D, seed=11):
    g = torch.Generator().manual_seed(seed)
    ks = torch.zeros(1, 40, dtype=torch.int32)
    ke = torch.zeros(1, 40, dtype=torch.int32)
    for group, rows in NAN_GROUPS.items():
        ks[0, rows.start : rows.stop], ke[0, rows.start : rows.stop] = NAN_RANGES[group]
    pad = torch.ones(1, 70, dtype=torch.bool)
    pad[0, 40:45] = False
    q, k, v = (torch.randn(1, L, 2, D, generator=g, dtype=torch.float64) for L in (40, 70, 70))
    grad = torch.randn(1, 40, 2, D, generator=g, dtype=torch.float64)
    to = lambda t: t.to(device=device, dtype=dtype)
    return to(q), to(k), to(v), ks.to(device), ke.to(device), pad.to(device), to(grad)


def _keys_of(*groups):
    """The keys the given groups attend (their ranges, minus the padded keys 40..44)."""
    keys = set()
    for group in groups:
        keys |= set(range(*NAN_RANGES[group])) - set(range(40, 45))
    return sorted(keys)


def _rows(*groups):
    return [i for group in groups for i in NAN_GROUPS[group]]


def _run(q, k, v, ks, ke, pad, grad):
    """af2's output and (dq, dk, dv), and the float64 reference's output, for the given inputs."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    grads = torch.autograd.grad(out, (q, k, v), grad)
    ref = _oracle(q.detach(), k.detach(), v.detach(), ks, ke, pad)
    return out.detach(), grads, ref


def _clean(device, D):
    """Output and gradients of the float64 reference on the NaN-free inputs."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, torch.float64, D)
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    ref = R.media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad)
    return ref.detach(), torch.autograd.grad(ref, (q, k, v), grad)


def _all_nan(t):
    return bool(torch.isnan(t).all())


def _close(actual, expected, dtype, what):
    tol = {torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}.get(
        dtype, ATTN_TOL[dtype]
    )
    assert not torch.isnan(actual).any(), f"{what}: NaN where the contract says the value is unaffected"
    torch.testing.assert_close(actual.double(), expected, **tol, msg=lambda m: f"{what}: {m}")


@NAN_D
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nan_in_a_query_row(device, dtype, D):
    """NaN in one element of q row (query 15, head 1): that query's output and dq rows are NaN,
    and so are dk and dv of the keys it attends; other queries are unaffected. The CPU kernel used
    to output 0 here, with a ~1e-38 gradient."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, dtype, D)
    q[0, 15, 1, 2] = NAN
    out, (dq, dk, dv), ref = _run(q, k, v, ks, ke, pad, grad)
    assert _all_nan(ref[0, 15, 1]), "the reference gives NaN for this row"
    assert _all_nan(out[0, 15, 1]), "output row of the NaN query"
    assert _all_nan(dq[0, 15, 1]), "dq row of the NaN query"
    keys = _keys_of("a")
    assert _all_nan(dk[0, keys, 1]) and _all_nan(dv[0, keys, 1]), "dk, dv of the keys the NaN query attends"
    clean_out, (clean_dq, _, _) = _clean(device, D)
    others = [i for i in range(40) if i != 15]
    _close(out[0, others], clean_out[0, others], dtype, "output of the other queries")
    _close(out[0, 15, 0], clean_out[0, 15, 0], dtype, "the NaN query's other head")
    _close(dq[0, others], clean_dq[0, others], dtype, "dq of the other queries")


@NAN_D
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nan_in_an_attended_key(device, dtype, D):
    """NaN in k of key 25 (head 0), which groups a and c attend and group b does not: a and c
    output NaN rows (NaN dq; NaN dk, dv over the keys they attend); b is unaffected. The CPU kernel
    used to ignore the NaN key."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, dtype, D)
    k[0, 25, 0, 4] = NAN
    out, (dq, dk, dv), ref = _run(q, k, v, ks, ke, pad, grad)
    hit = _rows("a", "c")
    assert _all_nan(ref[0, hit, 0]), "the reference gives NaN for the queries attending key 25"
    assert _all_nan(out[0, hit, 0]) and _all_nan(dq[0, hit, 0])
    keys = _keys_of("a", "c")
    assert _all_nan(dk[0, keys, 0]) and _all_nan(dv[0, keys, 0])
    clean_out, (clean_dq, _, _) = _clean(device, D)
    _close(out[0, _rows("b"), 0], clean_out[0, _rows("b"), 0], dtype, "queries not attending key 25")
    _close(out[0, :, 1], clean_out[0, :, 1], dtype, "the other head")
    _close(dq[0, :, 1], clean_dq[0, :, 1], dtype, "dq of the other head")
    assert torch.equal(out[0, _rows("empty")], torch.zeros_like(out[0, _rows("empty")]))


@NAN_D
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nan_in_keys_nobody_attends_is_ignored(device, dtype, D):
    """NaN in k of a padded key (42) is no query's score: every output equals the NaN-free one."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, dtype, D)
    k[0, 42] = NAN
    out, _, ref = _run(q, k, v, ks, ke, pad, grad)
    clean_out, _ = _clean(device, D)
    assert not torch.isnan(ref).any(), "the reference ignores it too"
    _close(out, clean_out, dtype, "output")


@NAN_D
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_nan_in_an_attended_value(device, dtype, D):
    """NaN in v of key 50, channel 3 (head 1), attended by groups b and c: channel 3 of their
    outputs is NaN, the other channels are not; their dq rows are NaN."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, dtype, D)
    v[0, 50, 1, 3] = NAN
    out, (dq, dk, dv), ref = _run(q, k, v, ks, ke, pad, grad)
    hit = _rows("b", "c")
    assert _all_nan(ref[0, hit, 1, 3]) and _all_nan(out[0, hit, 1, 3])
    assert _all_nan(dq[0, hit, 1])
    clean_out, _ = _clean(device, D)
    other_channels = [c for c in range(8) if c != 3]
    _close(
        out[0, hit, 1][..., other_channels],
        clean_out[0, hit, 1][..., other_channels],
        dtype,
        "the other channels of the queries attending key 50",
    )
    _close(out[0, :, 0], clean_out[0, :, 0], dtype, "the other head")


@NAN_D
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_queries_with_no_key_stay_exactly_zero_beside_nan(device, dtype, D):
    """Queries 0..9 have no key. With NaN in their own q rows and NaN in k and v of keys their
    neighbours attend (in the same tiles), their outputs and dq rows are exactly 0."""
    q, k, v, ks, ke, pad, grad = _nan_case(device, dtype, D)
    q[0, 0:10] = NAN
    k[0, 25, 0, 1] = NAN
    v[0, 3, :, 0] = NAN
    v[0, 50, 1, 3] = NAN
    v[0, 42] = NAN  # a padded key
    out, (dq, _, _), _ = _run(q, k, v, ks, ke, pad, grad)
    empty = _rows("empty")
    assert torch.equal(out[0, empty], torch.zeros_like(out[0, empty])), "no key: output exactly 0"
    assert torch.equal(dq[0, empty], torch.zeros_like(dq[0, empty])), "no key: dq exactly 0"


def test_nan_rule_is_in_the_docstring():
    doc = " ".join(media_cross_attention.__doc__.split())
    assert "NaN" in doc and "exactly 0" in doc


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("path", BACKWARD_PATHS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cuda_nan_rule_on_both_backward_paths(monkeypatch, dtype, path):
    """The NaN contract on the tensor-core forward (head dim 64) with each backward path. The
    forward keeps lse = NaN for a NaN row, so even the keys of that row other than the NaN one get
    NaN dv (with lse = +inf their p would be 0)."""
    monkeypatch.setenv("AF2_MEDIA_ATTN_BACKWARD", path)
    cuda = torch.device("cuda")
    test_nan_in_a_query_row(cuda, dtype, 64)
    test_nan_in_an_attended_key(cuda, dtype, 64)
    test_nan_in_an_attended_value(cuda, dtype, 64)
    test_queries_with_no_key_stay_exactly_zero_beside_nan(cuda, dtype, 64)
