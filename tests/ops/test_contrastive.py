"""af2.ops.contrastive_loss against the float64 reference, CLIP, and the memory bound."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from af2 import reference as R
from af2.nn import ContrastiveLoss
from af2.ops import contrastive_loss
from tests.conftest import CUDA_OK, FLOAT_DTYPES

# Loss terms are float32 sums of exps over B*M keys: tolerances by input dtype (inputs are the
# same values in both; bf16/fp16 differ only by float32 accumulation order).
LOSS_TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=1e-4, atol=1e-4),
    torch.bfloat16: dict(rtol=1e-4, atol=1e-4),
}
GRAD_TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float16: dict(rtol=5e-3, atol=1e-4),
    torch.bfloat16: dict(rtol=3e-2, atol=3e-4),
}
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def make(B, M, N, D, device="cpu", dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1).to(
        device=device, dtype=dtype
    )
    return unit(B, D), unit(B, M, D), (unit(B, M, N, D) if N else None)


def _ref(audio, text, neg, scale, reduction="mean"):
    up = lambda t: None if t is None else t.detach().double()
    return R.contrastive_loss(
        up(audio), up(text), logit_scale=float(scale), hard_negatives=up(neg), reduction=reduction
    )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("M,N", [(1, 0), (3, 0), (1, 4), (3, 4)])
def test_matches_float64_reference(device, dtype, M, N):
    audio, text, neg = make(37, M, N, 33, device, dtype)
    terms = contrastive_loss(audio, text, logit_scale=12.5, hard_negatives=neg, reduction="none")
    assert terms.shape == (2, 37, M)
    ref = _ref(audio, text, neg, 12.5, "none")
    torch.testing.assert_close(terms.double(), ref, **LOSS_TOL[dtype])
    loss = contrastive_loss(audio, text, logit_scale=12.5, hard_negatives=neg)
    torch.testing.assert_close(loss, terms.mean())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("M,N", [(1, 0), (3, 4)])
def test_gradients_match_float64_reference(device, dtype, M, N):
    audio, text, neg = make(29, M, N, 17, device, dtype, seed=1)
    inputs = [t.requires_grad_() for t in (audio, text, neg) if t is not None]
    scale_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    scale = torch.tensor(9.0, device=device, dtype=scale_dtype, requires_grad=True)
    loss = contrastive_loss(audio, text, logit_scale=scale, hard_negatives=neg)
    grads = torch.autograd.grad(loss, [*inputs, scale])
    ref_in = [t.detach().double().requires_grad_() for t in inputs]
    ref_scale = torch.tensor(9.0, dtype=torch.float64, device=device, requires_grad=True)
    ref = R.contrastive_loss(ref_in[0], ref_in[1], logit_scale=ref_scale, hard_negatives=ref_in[2] if N else None)
    refs = torch.autograd.grad(ref, [*ref_in, ref_scale])
    for name, a, b in zip(["audio", "text", "negatives", "scale"][: len(grads) - 1] + ["scale"], grads, refs):
        assert a.dtype == (scale_dtype if name == "scale" else dtype)
        torch.testing.assert_close(a.double(), b, **GRAD_TOL[dtype], msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("spread", [False, True], ids=["near", "spread"])
def test_many_tiles_match_float64_reference(device, dtype, spread):
    """B * M spans several score tiles with partial last tiles (the CPU kernel: 96 texts x 48
    audio rows), so off-band cells are taken; `spread` scales some rows far apart (scores over a
    range > 40), which sends those cells down the exact two-exp path. Arbitrary upstream gradients."""
    B, M, N, D = 203, 5, 2, 24  # M = 5: own-caption bands straddle tile edges
    audio, text, neg = make(B, M, N, D, device, torch.float64, seed=3)
    if spread:
        audio[::7] *= 6.0
        text[::5, 0] *= 4.0
    inputs = [t.to(dtype).requires_grad_() for t in (audio, text, neg)]
    scale = torch.tensor(
        11.0, device=device, dtype=torch.float64 if dtype == torch.float64 else torch.float32, requires_grad=True
    )
    up = torch.randn(2, B, M, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(device)
    terms = contrastive_loss(*inputs[:2], logit_scale=scale, hard_negatives=inputs[2], reduction="none")
    grads = torch.autograd.grad((terms.double() * up).sum(), [*inputs, scale])
    ref_in = [t.detach().double().requires_grad_() for t in inputs]
    ref_scale = torch.tensor(11.0, dtype=torch.float64, device=device, requires_grad=True)
    ref = R.contrastive_loss(*ref_in[:2], logit_scale=ref_scale, hard_negatives=ref_in[2], reduction="none")
    refs = torch.autograd.grad((ref * up).sum(), [*ref_in, ref_scale])
    torch.testing.assert_close(terms.double(), ref, **LOSS_TOL[dtype])
    for name, a, b in zip(["audio", "text", "negatives", "scale"], grads, refs):
        # relative to the largest gradient entry (the spread rows make some entries tiny)
        tol = GRAD_TOL[dtype]["rtol"] * max(b.abs().max().item(), 1.0)
        torch.testing.assert_close(a.double(), b, rtol=0, atol=tol, msg=lambda m: f"grad {name}: {m}")


def test_cpu_results_do_not_depend_on_the_thread_count():
    """The CPU kernel's work cells have a fixed summation order: the same bits on 1 or 2 threads."""
    audio, text, neg = make(300, 2, 1, 24, "cpu", seed=5)
    outs = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            ins = [t.clone().requires_grad_() for t in (audio, text, neg)]
            terms = contrastive_loss(ins[0], ins[1], logit_scale=10.0, hard_negatives=ins[2], reduction="none")
            terms.sum().backward()
            outs.append([terms.detach(), *[t.grad for t in ins]])
    finally:
        torch.set_num_threads(before)
    for x, y in zip(*outs):
        assert torch.equal(x, y)


def test_m1_n0_is_clip_symmetric_infonce(device):
    audio, text, _ = make(16, 1, 0, 32, device)
    logits = 20.0 * audio @ text[:, 0].T
    labels = torch.arange(16, device=device)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(contrastive_loss(audio, text, logit_scale=20.0), clip)


def test_other_paraphrases_of_the_same_audio_are_not_negatives(device):
    """Changing a_i's other captions must not change a2t term (i, j) (only positives + others)."""
    audio, text, _ = make(6, 3, 0, 8, device)
    terms = contrastive_loss(audio, text, logit_scale=5.0, reduction="none")
    text2 = text.clone()
    text2[2, 1] = F.normalize(torch.randn(8, device=device), dim=-1)
    terms2 = contrastive_loss(audio, text2, logit_scale=5.0, reduction="none")
    torch.testing.assert_close(terms2[0, 2, 0], terms[0, 2, 0])  # same audio, other paraphrase changed
    assert not torch.allclose(terms2[0, 3, 0], terms[0, 3, 0])  # another audio sees it as a negative


def test_gradcheck_float64(device):
    audio, text, neg = make(5, 2, 3, 4, device, torch.float64, seed=2)
    scale = torch.tensor(3.0, dtype=torch.float64, device=device, requires_grad=True)
    ins = [t.requires_grad_() for t in (audio, text, neg)]
    f = lambda a, t, h, s: contrastive_loss(a, t, logit_scale=s, hard_negatives=h, reduction="none")
    assert torch.autograd.gradcheck(f, (*ins, scale))


def test_single_row_batch(device):
    audio, text, neg = make(1, 2, 2, 8, device, torch.float64)
    terms = contrastive_loss(audio, text, logit_scale=4.0, hard_negatives=neg, reduction="none")
    torch.testing.assert_close(terms, _ref(audio, text, neg, 4.0, "none"))


def test_opcheck(device):
    audio, text, neg = make(9, 2, 3, 16, device)
    scale = torch.tensor(7.0, device=device, requires_grad=True)
    args = [t.requires_grad_() for t in (audio, text)]
    torch.library.opcheck(
        torch.ops.af2.contrastive_loss.default, (args[0], args[1], args[0], args[1], neg.requires_grad_(), scale, 0)
    )
    torch.library.opcheck(torch.ops.af2.contrastive_loss.default, (args[0], args[1], args[0], args[1], None, scale, 0))


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    audio, text, neg = make(8, 2, 2, 16, device)
    w = torch.randn(16, 16, device=device, requires_grad=True)
    scale = torch.tensor(10.0, device=device)

    def f(a, t, h):
        return contrastive_loss(F.normalize(a @ w, dim=-1), t, logit_scale=scale, hard_negatives=h)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager" if device.type == "cpu" else "inductor")
    out, ref = compiled(audio, text, neg), f(audio, text, neg)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out, w)[0], torch.autograd.grad(ref, w)[0])


def test_module_scale_init_clamp_and_grad(device):
    audio, text, neg = make(8, 2, 1, 16, device)
    mod = ContrastiveLoss().to(device)
    assert mod.logit_scale.shape == (1,)
    torch.testing.assert_close(mod.scale(), torch.tensor([1 / 0.07], device=device))
    loss = mod(audio, text, neg)
    loss.backward()
    assert mod.logit_scale.grad is not None and mod.logit_scale.grad != 0
    with torch.no_grad():
        mod.logit_scale.fill_(10.0)
    torch.testing.assert_close(mod.scale(), torch.tensor([100.0], device=device))
    mod.clamp_()
    assert mod.logit_scale.item() == pytest.approx(torch.log(torch.tensor(100.0)).item())
    mod.load_state_dict({"logit_scale": torch.tensor(2.0)})  # a 0-dim scale of an older checkpoint
    assert mod.logit_scale.shape == (1,) and mod.logit_scale.item() == 2.0


def test_bad_input_is_named(device):
    audio, text, neg = make(4, 2, 3, 8, device)
    cases = [
        (
            r"text must be \(B, M, D\) with audio's B = 4 and D = 8, got sizes \[3, 2, 8\]",
            lambda: contrastive_loss(audio, text[:3], logit_scale=1.0),
        ),
        (
            r"text must be \(B, M, D\) with audio's B = 4 and D = 8, got sizes \[4, 2, 7\]",
            lambda: contrastive_loss(audio, text[..., :7], logit_scale=1.0),
        ),
        (
            r"hard_negatives must be \(B, M, N, D\) = \(4, 2, N, 8\), got sizes \[4, 1, 3, 8\]",
            lambda: contrastive_loss(audio, text, logit_scale=1.0, hard_negatives=neg[:, :1]),
        ),
        (
            r"logit_scale must be a scalar, got sizes \[2\]",
            lambda: contrastive_loss(audio, text, logit_scale=torch.ones(2, device=device)),
        ),
        (r"text has dtype Half but audio has Float", lambda: contrastive_loss(audio, text.half(), logit_scale=1.0)),
        (
            r"audio must be float32, float16, bfloat16 or float64, got Long",
            lambda: contrastive_loss(audio.long(), text.long(), logit_scale=1.0),
        ),
        (
            r"audio must be \(B, D\), got sizes \[4, 1, 8\]",
            lambda: contrastive_loss(audio[:, None], text, logit_scale=1.0),
        ),
        (
            r"reduction must be 'mean' or 'none', got 'sum'",
            lambda: contrastive_loss(audio, text, logit_scale=1.0, reduction="sum"),
        ),
    ]
    for pattern, call in cases:
        with pytest.raises(ValueError, match=pattern):
            call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_mismatch_is_named():
    audio, text, neg = make(4, 2, 3, 8, "cuda")
    with pytest.raises(ValueError, match=r"text is on cpu but audio is on cuda"):
        contrastive_loss(audio, text.cpu(), logit_scale=1.0)
    with pytest.raises(ValueError, match=r"hard_negatives is on cpu but audio is on cuda"):
        contrastive_loss(audio, text, logit_scale=1.0, hard_negatives=neg.cpu())


# ---- CUDA kernel paths -------------------------------------------------------------------------
# AF2_CONTRASTIVE_KERNEL picks the CUDA path per call: "tc" (tensor cores: bf16 / fp16, D % 16 == 0,
# D <= 1024; otherwise the SIMT kernels run) or "simt". Both must match the float64 reference:
# B odd and not a multiple of the 64-row tile, D from one 16-column step to two output slices.
CUDA_PATHS = ["simt", "tc"]
HALF_DTYPES = [torch.float16, torch.bfloat16]
needs_cuda = pytest.mark.skipif(not CUDA_OK, reason="needs a CUDA device and a CUDA build of af2")


def _check_terms_and_grads(audio, text, neg, scale, dtype, offset=0, audio_all=None, text_all=None):
    """Terms and gradients of the op (local rows [offset, offset + B) of the gathered batch) against
    the float64 reference of the whole batch."""
    gathered = audio_all is not None
    A = (audio_all if gathered else audio).detach().requires_grad_()
    T = (text_all if gathered else text).detach().requires_grad_()
    B = audio.shape[0]
    a, t = (A[offset : offset + B], T[offset : offset + B]) if gathered else (A, T)
    h = None if neg is None else neg.detach().requires_grad_()
    s = torch.tensor(scale, device=audio.device, dtype=torch.float32, requires_grad=True)
    terms = torch.ops.af2.contrastive_loss(a, t, A if gathered else a, T if gathered else t, h, s, offset)[0]
    # Upstream gradients of mean-reduction size with random signs (exercises dS of either sign).
    g = torch.randn(terms.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g = (g / terms.numel()).to(terms.device)
    leaves = [A, T, *([h] if h is not None else []), s]
    grads = torch.autograd.grad((terms.double() * g).sum(), leaves)

    ref_leaves = [x.detach().double().requires_grad_() for x in leaves]
    rA, rT = ref_leaves[0], ref_leaves[1]
    rh = ref_leaves[2] if h is not None else None
    if gathered and rh is not None:  # the other ranks' negatives play no part in this rank's terms
        rh_full = torch.zeros((rA.shape[0], *rh.shape[1:]), dtype=torch.float64, device=rh.device)
        rh_full = torch.cat([rh_full[:offset], rh, rh_full[offset + B :]])
    else:
        rh_full = rh
    ref = R.contrastive_loss(rA, rT, logit_scale=ref_leaves[-1], hard_negatives=rh_full, reduction="none")
    ref = ref[:, offset : offset + B]
    torch.testing.assert_close(terms.double(), ref.detach(), **LOSS_TOL[dtype])
    refs = torch.autograd.grad((ref * g).sum(), ref_leaves)
    names = ["audio", "text", *(["negatives"] if h is not None else []), "scale"]
    for name, x, r in zip(names, grads, refs):
        # An audio/text gradient is the sum of two parts (query side, key side). The SIMT path
        # stores each in the storage dtype and autograd adds them, so a small entry can carry two
        # roundings of parts as large as the gradient's largest entry: 2 u max|grad| (u = unit
        # roundoff: 2^-8 bf16, 2^-11 fp16; seen on an H200 with the SIMT path at bf16, D = 16).
        atol = max(GRAD_TOL[dtype]["atol"], 2 * UNIT_ROUNDOFF[dtype] * r.abs().max().item())
        torch.testing.assert_close(
            x.double(), r, rtol=GRAD_TOL[dtype]["rtol"], atol=atol, msg=lambda m: f"grad {name}: {m}"
        )


@needs_cuda
@pytest.mark.parametrize("path", CUDA_PATHS)
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("M,N", [(1, 0), (3, 0), (1, 4), (3, 4)])
@pytest.mark.parametrize("B,D", [(37, 16), (67, 256), (131, 512), (67, 768), (37, 1024), (65, 80)])
def test_cuda_paths_match_float64_reference(monkeypatch, path, dtype, M, N, B, D):
    monkeypatch.setenv("AF2_CONTRASTIVE_KERNEL", path)
    audio, text, neg = make(B, M, N, D, "cuda", dtype, seed=B + D)
    _check_terms_and_grads(audio, text, neg, 11.0, dtype)


@needs_cuda
@pytest.mark.parametrize("path", CUDA_PATHS)
@pytest.mark.parametrize("dtype", HALF_DTYPES, ids=str)
@pytest.mark.parametrize("M,N", [(1, 0), (3, 4)])
@pytest.mark.parametrize("D", [64, 512])
def test_cuda_paths_gathered_keys_with_offset(monkeypatch, path, dtype, M, N, D):
    """A rank's shard (B = 67 rows at offset 70) against gathered keys (G = 201): the positives and
    the excluded own group sit inside, not at the start of, a key tile."""
    monkeypatch.setenv("AF2_CONTRASTIVE_KERNEL", path)
    G, B, offset = 201, 67, 70
    audio_all, text_all, _ = make(G, M, 0, D, "cuda", dtype, seed=D)
    _, _, neg = make(B, M, N, D, "cuda", dtype, seed=D + 1)
    _check_terms_and_grads(
        audio_all[offset : offset + B],
        text_all[offset : offset + B],
        neg,
        9.0,
        dtype,
        offset=offset,
        audio_all=audio_all,
        text_all=text_all,
    )


@needs_cuda
@pytest.mark.parametrize("path", CUDA_PATHS)
def test_cuda_paths_single_row_and_unaligned_views(monkeypatch, path):
    """B = 1 (row_lse = -inf: no other audio) and a view whose rows are not 16-byte aligned (the
    tensor-core path falls back to SIMT)."""
    monkeypatch.setenv("AF2_CONTRASTIVE_KERNEL", path)
    audio, text, neg = make(1, 2, 2, 64, "cuda", torch.bfloat16, seed=3)
    _check_terms_and_grads(audio, text, neg, 5.0, torch.bfloat16)
    big_a, big_t, _ = make(9, 1, 0, 72, "cuda", torch.float16, seed=4)
    audio, text = big_a.flatten()[4 : 4 + 9 * 64].view(9, 64), big_t.flatten()[4 : 4 + 9 * 64].view(9, 1, 64)
    _check_terms_and_grads(audio, text, None, 5.0, torch.float16)


@needs_cuda
def test_cuda_tensor_core_path_opcheck(monkeypatch):
    monkeypatch.setenv("AF2_CONTRASTIVE_KERNEL", "tc")
    audio, text, neg = make(67, 2, 3, 64, "cuda", torch.bfloat16)
    scale = torch.tensor(7.0, device="cuda", requires_grad=True)
    a, t = audio.requires_grad_(), text.requires_grad_()
    torch.library.opcheck(torch.ops.af2.contrastive_loss.default, (a, t, a, t, neg.requires_grad_(), scale, 0))


@needs_cuda
def test_cuda_kernel_variable_rejects_other_values(monkeypatch):
    monkeypatch.setenv("AF2_CONTRASTIVE_KERNEL", "SIMT")
    audio, text, _ = make(8, 1, 0, 64, "cuda", torch.bfloat16)
    with pytest.raises(ValueError, match="AF2_CONTRASTIVE_KERNEL must be 'tc' or 'simt', got 'SIMT'"):
        contrastive_loss(audio, text, logit_scale=5.0)


def test_peak_memory_is_far_below_the_logits_matrix():
    """B = 16384, D = 256: forward + backward in a fresh process (the kernel returns freed
    memory to the OS at once: small mmap threshold), measured by the process's peak RSS."""
    code = textwrap.dedent("""
        import torch, torch.nn.functional as F
        from af2.ops import contrastive_loss
        def mb(key):
            return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key)) / 1024
        B, D = 16384, 256
        a = F.normalize(torch.randn(B, D), dim=-1).requires_grad_()
        t = F.normalize(torch.randn(B, 1, D), dim=-1).requires_grad_()
        open('/proc/self/clear_refs', 'w').write('5')
        base = mb('VmRSS')
        contrastive_loss(a, t, logit_scale=10.0).backward()
        print(mb('VmHWM') - base)
    """)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    logits_mb = 16384 * 16384 * 4 / 2**20  # one float32 B x B matrix: 1024 MB
    from tests.conftest import report

    report(
        f"contrastive_loss B=16384 D=256 fwd+bwd peak extra memory: {peak_mb:.0f} MB (B^2 logits: {logits_mb:.0f} MB)"
    )
    assert peak_mb < logits_mb / 5, f"peak extra memory {peak_mb:.0f} MB vs {logits_mb:.0f} MB of logits"
