"""Property-based checks of every op's argument validation (hypothesis).

Each example draws a valid call (random sizes, empty ones included, dtypes, strided views, optional
arguments) and at most one fault: a tensor on the meta device beside CPU ones, all tensors on
meta, a wrong dtype or size, an out-of-range integer. Then exactly one of these holds:
  * no fault: the result equals the float64 reference (within the dtype's tolerance);
  * all-meta: the fake kernel's result (meta tensors of the right sizes);
  * a fault: ValueError / RuntimeError / TypeError whose message names the faulty argument.
Never a crash, a hang or garbage. Examples per test: the "af2-ops" profile below
(AF2_HYPOTHESIS_EXAMPLES overrides it, e.g. for a longer CI run).
"""

from __future__ import annotations

import os
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from af2 import reference as R
from af2.ops import (
    contrastive_loss,
    gated_residual,
    media_cross_attention,
    media_key_ranges,
    rope_windowed,
    rope_windowed_qk,
)
from tests.conftest import FLOAT_DTYPES, TOLERANCES

settings.register_profile(
    "af2-ops",
    max_examples=int(os.environ.get("AF2_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings(settings.get_profile("af2-ops"))
ERRORS = (ValueError, RuntimeError, TypeError)
LAYOUTS = ["contiguous", "strided", "transposed"]


def tensor(shape, dtype, layout, gen):
    """A random tensor of `shape` laid out contiguously, with stride 2 along the last dim, or as a
    transposed view of dims 0 and 1."""
    shape = list(shape)
    if layout == "strided" and shape:
        base = torch.randn((*shape[:-1], 2 * shape[-1]), generator=gen, dtype=torch.float64)
        return base.to(dtype)[..., ::2]
    if layout == "transposed" and len(shape) >= 2:
        base = torch.randn((shape[1], shape[0], *shape[2:]), generator=gen, dtype=torch.float64)
        return base.to(dtype).transpose(0, 1)
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64).to(dtype)


def expect_error(call, name, meta=False):
    """The call raises one of ERRORS naming `name` (as a word); a device fault names 'meta'."""
    with pytest.raises(ERRORS) as info:
        call()
    msg = str(info.value)
    assert re.search(rf"\b{re.escape(name)}\b", msg), f"the error does not name {name!r}: {msg}"
    if meta:
        assert isinstance(info.value, ValueError) and "meta" in msg, msg


def to_meta(t):
    return t.to("meta") if isinstance(t, torch.Tensor) else t


def assert_meta_like(out, like):
    for o, r in zip(out, like):
        assert o.device.type == "meta" and o.shape == r.shape and o.dtype == r.dtype


# ---- rope_windowed / rope_windowed_qk -------------------------------------------------------


@st.composite
def rope_calls(draw):
    c = dict(
        B=draw(st.integers(0, 2)),
        W=draw(st.integers(0, 3)),
        ws=draw(st.integers(1, 4)),
        H=draw(st.integers(1, 3)),
        Hk=draw(st.integers(1, 2)),
        D=draw(st.sampled_from([2, 4, 6, 8])),
        dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        offsets=draw(st.sampled_from([None, torch.int32, torch.int64])),
        interleaved=draw(st.booleans()),
        pair=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    c["rd"] = draw(st.sampled_from(list(range(2, c["D"] + 1, 2))))
    faults = [None, None, "all_meta", "meta:x", "dtype:x", "rotary_dim:odd", "rotary_dim:big", "window_size:0"]
    if c["pair"]:
        faults += ["meta:k", "dtype:k"]
    if c["offsets"] is not None:
        faults += ["meta:window_offsets", "shape:window_offsets"]
        if c["B"] * c["W"] > 0:
            faults += ["offsets:negative", "offsets:huge"]
    c["fault"] = draw(st.sampled_from(faults))
    return c


@PROFILE
@given(rope_calls())
def test_rope_validation(c):
    gen = torch.Generator().manual_seed(c["seed"])
    B, W, ws, D = c["B"], c["W"], c["ws"], c["D"]
    x = tensor((B, W * ws, c["H"], D), c["dtype"], c["layout"], gen)
    k = tensor((B, W * ws, c["Hk"], D), c["dtype"], "contiguous", gen)
    off = None
    if c["offsets"] is not None:
        off = (torch.randint(0, 50, (B, W), generator=gen) * ws).to(c["offsets"])
    kw = dict(window_size=ws, rotary_dim=c["rd"], interleaved=c["interleaved"])
    first = "q" if c["pair"] else "x"
    fault = c["fault"]
    if fault == "meta:x":
        if off is None and not c["pair"]:
            fault, x = "all_meta", x.to("meta")  # x is the only tensor: all inputs are on meta
        else:
            x = x.to("meta")
    elif fault == "meta:k":
        k = k.to("meta")
    elif fault == "meta:window_offsets":
        off = off.to("meta")
    elif fault == "all_meta":
        x, k, off = to_meta(x), to_meta(k), to_meta(off)
    elif fault == "dtype:x":
        x = x.to(torch.int32)
    elif fault == "dtype:k":
        k = k.to(torch.float64 if c["dtype"] != torch.float64 else torch.float32)
    elif fault == "rotary_dim:odd":
        kw["rotary_dim"] = c["rd"] - 1
    elif fault == "rotary_dim:big":
        kw["rotary_dim"] = D + 2
    elif fault == "window_size:0":
        kw["window_size"] = 0
    elif fault == "shape:window_offsets":
        off = torch.zeros(B, W + 1, dtype=off.dtype)
    elif fault == "offsets:negative":
        off[-1, -1] = -ws
    elif fault == "offsets:huge":
        off[0, 0] = 2**40 if off.dtype == torch.int64 else 2**31 - 1

    def call():
        if c["pair"]:
            return rope_windowed_qk(x, k, window_offsets=off, **kw)
        return (rope_windowed(x, window_offsets=off, **kw),)

    if fault is None:
        outs = call()
        ins = (x, k) if c["pair"] else (x,)
        for out, t in zip(outs, ins):
            ref = R.rope_windowed(t.double(), window_offsets=off, **kw)
            assert out.shape == t.shape and out.dtype == t.dtype and out.is_contiguous()
            torch.testing.assert_close(out.double(), ref, **TOLERANCES[c["dtype"]])
    elif fault == "all_meta":
        assert_meta_like(call(), (x, k) if c["pair"] else (x,))
    else:
        kind, name = fault.split(":")
        name = {"offsets": "window_offsets", "rotary_dim": "rotary_dim", "window_size": "window_size"}.get(kind, name)
        expect_error(call, first if name == "x" else name, meta=kind == "meta")


# ---- media_cross_attention ------------------------------------------------------------------


@st.composite
def attention_calls(draw):
    c = dict(
        B=draw(st.integers(0, 2)),
        Lq=draw(st.integers(0, 5)),
        Lk=draw(st.integers(0, 7)),
        H=draw(st.integers(1, 2)),
        D=draw(st.integers(1, 9)),
        dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        int64=draw(st.booleans()),
        pad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    faults = [
        None,
        None,
        "all_meta",
        "meta:k",
        "meta:v",
        "meta:key_start",
        "meta:key_end",
        "dtype:q",
        "dtype:k",
        "dtype:key_end",
        "shape:key_start",
        "shape:k",
    ]
    if c["pad"]:
        faults += ["meta:key_padding_mask", "dtype:key_padding_mask"]
    if c["B"] * c["Lq"] > 0:
        faults += ["range:key_end_past_lk", "range:key_start_negative", "range:inverted"]
        if c["int64"]:
            faults += ["range:key_end_huge"]
    c["fault"] = draw(st.sampled_from(faults))
    return c


@PROFILE
@given(attention_calls())
def test_media_cross_attention_validation(c):
    gen = torch.Generator().manual_seed(c["seed"])
    B, Lq, Lk, H, D = c["B"], c["Lq"], c["Lk"], c["H"], c["D"]
    q = tensor((B, Lq, H, D), c["dtype"], c["layout"], gen)
    k = tensor((B, Lk, H, D), c["dtype"], "contiguous", gen)
    v = tensor((B, Lk, H, D), c["dtype"], c["layout"], gen)
    a, b = torch.randint(0, Lk + 1, (B, Lq), generator=gen), torch.randint(0, Lk + 1, (B, Lq), generator=gen)
    ks, ke = torch.minimum(a, b), torch.maximum(a, b)
    if not c["int64"]:
        ks, ke = ks.int(), ke.int()
    pad = torch.rand(B, Lk, generator=gen) > 0.3 if c["pad"] else None
    fault = c["fault"]
    if fault and fault.startswith("meta:"):
        name = fault.split(":")[1]
        q, k, v, ks, ke, pad = (
            t.to("meta") if t is not None and n == name else t
            for n, t in zip(["q", "k", "v", "key_start", "key_end", "key_padding_mask"], [q, k, v, ks, ke, pad])
        )
    elif fault == "all_meta":
        q, k, v, ks, ke, pad = map(to_meta, (q, k, v, ks, ke, pad))
    elif fault == "dtype:q":
        q = q.to(torch.int32)
    elif fault == "dtype:k":
        k = k.to(torch.float64 if c["dtype"] != torch.float64 else torch.float16)
    elif fault == "dtype:key_end":
        ke = ke.float()
    elif fault == "dtype:key_padding_mask":
        pad = pad.to(torch.uint8)
    elif fault == "shape:key_start":
        ks = ks[:, :-1] if Lq else torch.zeros(B, 1, dtype=ks.dtype)
    elif fault == "shape:k":
        k = torch.cat([k, k[:, :, :1]], dim=2)
    elif fault == "range:key_end_past_lk":
        ke[-1, -1] = Lk + 1
    elif fault == "range:key_start_negative":
        ks[0, 0] = -1
    elif fault == "range:inverted":
        ks[0, -1], ke[0, -1] = 1, 0
    elif fault == "range:key_end_huge":
        ke[0, 0] = 2**32 + ke[0, 0]  # was wrapped back to the original value by the int32 cast

    call = lambda: media_cross_attention(q, k, v, key_start=ks, key_end=ke, key_padding_mask=pad, scale=0.4)
    if fault is None:
        grad_ok = c["dtype"] in (torch.float32, torch.float64)
        q, k, v = (t.requires_grad_(grad_ok) for t in (q, k, v))
        out = call()
        q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
        ref = R.media_cross_attention(q64, k64, v64, key_start=ks, key_end=ke, key_padding_mask=pad, scale=0.4)
        tol = {**TOLERANCES, torch.float32: dict(rtol=2e-5, atol=2e-5)}[c["dtype"]]
        assert out.shape == q.shape and out.dtype == q.dtype
        torch.testing.assert_close(out.double(), ref, **tol)
        if grad_ok and out.numel():
            g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
            for got, want in zip(
                torch.autograd.grad(out, (q, k, v), g.to(out.dtype)), torch.autograd.grad(ref, (q64, k64, v64), g)
            ):
                torch.testing.assert_close(got.double(), want, **tol)
    elif fault == "all_meta":
        assert_meta_like((call(),), (q,))
    else:
        kind, name = fault.split(":")
        if kind == "range":
            name = "key_start" if "start" in name else "key_end"
        expect_error(call, name, meta=kind == "meta")


# ---- gated_residual ---------------------------------------------------------------------------


@st.composite
def gated_calls(draw):
    c = dict(
        shape=draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)),
        dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        gate_shape=draw(st.sampled_from([(1,), (), (1, 1)])),
        gate_dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        seed=draw(st.integers(0, 2**16)),
    )
    c["fault"] = draw(
        st.sampled_from(
            [None, None, "all_meta", "meta:y", "meta:gate", "cpu_gate", "dtype:x", "dtype:y", "shape:y", "shape:gate"]
        )
    )
    return c


@PROFILE
@given(gated_calls())
def test_gated_residual_validation(c):
    gen = torch.Generator().manual_seed(c["seed"])
    x = tensor(c["shape"], c["dtype"], c["layout"], gen)
    y = tensor(c["shape"], c["dtype"], "contiguous", gen)
    gate = torch.randn(tuple(c["gate_shape"]), generator=gen, dtype=torch.float64).to(c["gate_dtype"])
    fault = c["fault"]
    if fault == "meta:y":
        y = y.to("meta")
    elif fault == "meta:gate":
        gate = gate.to("meta")
    elif fault == "all_meta":
        x, y, gate = map(to_meta, (x, y, gate))
    elif fault == "cpu_gate":  # allowed: a one-element gate may stay on the CPU
        x, y = x.to("meta"), y.to("meta")
    elif fault == "dtype:x":
        x, y = x.to(torch.int64), y.to(torch.int64)
    elif fault == "dtype:y":
        y = y.to(torch.float64 if c["dtype"] != torch.float64 else torch.float32)
    elif fault == "shape:y":
        y = torch.zeros((*c["shape"], 5), dtype=c["dtype"])
    elif fault == "shape:gate":
        gate = torch.zeros(2, dtype=c["gate_dtype"])

    if fault is None:
        grad_ok = c["dtype"] in (torch.float32, torch.float64)
        x, y, gate = (t.requires_grad_(grad_ok) for t in (x, y, gate))
        out = gated_residual(x, y, gate)
        x64, y64, g64 = (t.detach().double().requires_grad_() for t in (x, y, gate))
        ref = R.gated_residual(x64, y64, g64)
        assert out.shape == x.shape and out.dtype == x.dtype
        ref = ref.reshape(out.shape)  # the eager twin broadcasts a 0-dim x with a (1,) gate to (1,)
        torch.testing.assert_close(out.double(), ref, **TOLERANCES[c["dtype"]])
        if grad_ok:
            up = torch.randn(out.shape, generator=gen, dtype=torch.float64)
            for got, want in zip(
                torch.autograd.grad(out, (x, y, gate), up.to(out.dtype)), torch.autograd.grad(ref, (x64, y64, g64), up)
            ):
                assert got.shape == want.shape
                torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    elif fault in ("all_meta", "cpu_gate"):
        assert_meta_like((gated_residual(x, y, gate),), (x,))
    else:
        kind, name = fault.split(":")
        expect_error(lambda: gated_residual(x, y, gate), name, meta=kind == "meta")


# ---- contrastive_loss ---------------------------------------------------------------------------


@st.composite
def contrastive_calls(draw):
    c = dict(
        B=draw(st.integers(1, 4)),
        M=draw(st.integers(1, 3)),
        N=draw(st.integers(0, 2)),
        D=draw(st.integers(1, 8)),
        dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        scale_tensor=draw(st.booleans()),
        reduction=draw(st.sampled_from(["mean", "none"])),
        seed=draw(st.integers(0, 2**16)),
    )
    faults = [None, None, "all_meta", "meta:text", "shape:text", "dtype:text", "dtype:audio", "reduction:reduction"]
    if c["N"]:
        faults += ["meta:hard_negatives", "shape:hard_negatives"]
    if c["scale_tensor"]:
        faults += ["meta:logit_scale", "shape:logit_scale"]
    c["fault"] = draw(st.sampled_from(faults))
    return c


@PROFILE
@given(contrastive_calls())
def test_contrastive_loss_validation(c):
    gen = torch.Generator().manual_seed(c["seed"])
    B, M, N, D, dtype = c["B"], c["M"], c["N"], c["D"], c["dtype"]
    unit = lambda t: torch.nn.functional.normalize(t.double(), dim=-1).to(dtype)
    audio = unit(tensor((B, D), dtype, c["layout"], gen))
    text = unit(tensor((B, M, D), dtype, "contiguous", gen))
    neg = unit(tensor((B, M, N, D), dtype, "contiguous", gen)) if N else None
    scale = torch.tensor(7.0) if c["scale_tensor"] else 7.0
    reduction = c["reduction"]
    fault = c["fault"]
    if fault == "meta:text":
        text = text.to("meta")
    elif fault == "meta:hard_negatives":
        neg = neg.to("meta")
    elif fault == "meta:logit_scale":
        scale = scale.to("meta")
    elif fault == "all_meta":
        audio, text, neg, scale = map(to_meta, (audio, text, neg, scale))
    elif fault == "shape:text":
        text = torch.zeros(B, M, D + 1, dtype=dtype)
    elif fault == "shape:hard_negatives":
        neg = torch.zeros(B, M + 1, N, D, dtype=dtype)
    elif fault == "shape:logit_scale":
        scale = torch.ones(2)
    elif fault == "dtype:text":
        text = text.to(torch.float64 if dtype != torch.float64 else torch.float32)
    elif fault == "dtype:audio":
        audio, text = audio.to(torch.int32), text.to(torch.int32)
    elif fault == "reduction:reduction":
        reduction = "sum"

    call = lambda: contrastive_loss(audio, text, logit_scale=scale, hard_negatives=neg, reduction=reduction)
    if fault is None:
        out = call()
        ref = R.contrastive_loss(
            audio.double(),
            text.double(),
            logit_scale=7.0,
            hard_negatives=None if neg is None else neg.double(),
            reduction=reduction,
        )
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        assert out.dtype == acc and out.shape == ref.shape
        tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.double(), ref, **tol)
    elif fault == "all_meta":
        out = call()
        assert out.device.type == "meta"
    else:
        kind, name = fault.split(":")
        expect_error(call, name, meta=kind == "meta")


# ---- media_key_ranges ---------------------------------------------------------------------------


def key_ranges_reference(loc, counts, slot, immediate):
    """Python-int reference: (start, end) lists, or None where a key index passes 2^31 - 1."""
    starts, ends = [], []
    for b, row in enumerate(loc.tolist()):
        t, srow, erow = 0, [], []
        for is_media in row:
            t += bool(is_media)
            if t == 0:
                s = e = 0
            else:
                e = (t - 1) * slot + counts[b][min(t - 1, len(counts[b]) - 1)]
                s = (t - 1) * slot if immediate else 0
            srow.append(s)
            erow.append(e)
        starts.append(srow)
        ends.append(erow)
    return starts, ends


@PROFILE
@given(
    B=st.integers(1, 2),
    Lq=st.integers(0, 6),
    T=st.integers(1, 3),
    slot=st.sampled_from([0, 1, 3, 5, 2**29, 2**30, 2**31 - 1]),
    per_media=st.booleans(),
    immediate=st.booleans(),
    data=st.data(),
)
def test_media_key_ranges_validation(B, Lq, T, slot, per_media, immediate, data):
    loc = torch.tensor(
        data.draw(st.lists(st.lists(st.booleans(), min_size=Lq, max_size=Lq), min_size=B, max_size=B)), dtype=torch.bool
    ).reshape(B, Lq)
    count = st.integers(-1, slot + 1) if slot < 10 else st.sampled_from([-1, 0, 1, slot, slot + 1])
    if per_media:
        counts = data.draw(st.lists(st.lists(count, min_size=T, max_size=T), min_size=B, max_size=B))
        call = lambda: media_key_ranges(loc, torch.tensor(counts), immediate, slot_size=slot)
    else:
        n = data.draw(count)
        counts = [[n]] * B
        slot = n if n >= 0 else slot  # an int count is its own slot size
        call = lambda: media_key_ranges(loc, n, immediate)
    media = int(loc.sum(1).max()) if Lq else 0
    bad_count = any(not 0 <= x <= slot for row in counts for x in row)
    # checked in this order: the slot's key indices, the counts, the number of media
    if slot > 2**31 - 1 or (per_media and T * slot > 2**31 - 1):
        expect_error(call, "slot_size")
    elif bad_count:
        expect_error(call, "tokens_per_media")
    elif per_media and media > T:
        expect_error(call, "tokens_per_media")
    elif not per_media and media * slot > 2**31 - 1:
        expect_error(call, "slot_size")
    else:
        ks, ke = call()
        starts, ends = key_ranges_reference(loc, counts, slot, immediate)
        assert ks.dtype == ke.dtype == torch.int32
        assert ks.tolist() == starts and ke.tolist() == ends
