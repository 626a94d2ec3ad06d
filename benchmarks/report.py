"""Benchmark report: times af2's ops against their baselines on this machine's device and
writes benchmarks/results/<device>-<date>.json (format in docs/design.md).

  python benchmarks/report.py [--ops rope media_attn contrastive model] [--out benchmarks/results]
                              [--quick] [--smoke] [--budget-s SECONDS]

The JSON file is (re)written after every row, so a run that is killed keeps the rows it finished
("sections_done" lists the sections that ran to the end). Sections run in the order given, and
rows within a section most important first; with --budget-s a section starts no new measurement
once the budget is spent (it records a skipped row instead).

On a GPU it measures the device's copy bandwidth and bf16 matmul rate in the same run (the
ceilings), times with CUDA events (median of many runs after warm-up) and records peak memory.
On the CPU it times with perf_counter and reports the same figures except peak memory.
Liger-Kernel's RoPE is timed too when `liger_kernel` is importable (plain RoPE case).
The commit comes from `git rev-parse HEAD` or the AF2_COMMIT environment variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import af2  # noqa: E402
from af2 import reference as R  # noqa: E402
from af2.ops import contrastive_loss, rope_windowed, rope_windowed_qk  # noqa: E402
from benchmarks.cases import MEDIA_ATTN_SHAPES, media_attn_case, media_attn_impls  # noqa: E402
from benchmarks.memory import cpu_peak_mb, cuda_peak_mb  # noqa: E402

CEILINGS: dict = {}  # this run's measured ceilings (set by main)
DEADLINE = float("inf")  # time.monotonic() after which sections start no new measurement (--budget-s)
NO_EAGER = False  # --no-eager: the media attention rows leave out the eager twin and the memory probes


def time_left() -> float:
    """Seconds left of this run's --budget-s (inf without one)."""
    return DEADLINE - time.monotonic()


# ---- timing ------------------------------------------------------------------------------


def time_ms(fn, device: torch.device, warmup: int = 3, reps: int = 20) -> float:
    """Median wall time of fn() in ms (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        return statistics.median(times)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def peak_mem_mb(fn, device: torch.device):
    return cuda_peak_mb(fn) if device.type == "cuda" else None


def ceilings(device: torch.device, quick: bool) -> dict:
    n = (1 << 28) if device.type == "cuda" else (1 << 25)  # 512 MiB / 64 MiB of bf16
    src = torch.randn(n, device=device).to(torch.bfloat16)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, reps=10 if quick else 20)
    out = {"copy_GBps": round(2 * src.numel() * 2 / ms / 1e6, 1)}
    if device.type == "cuda":
        m = 8192
        a = torch.randn(m, m, device=device, dtype=torch.bfloat16)
        b = torch.randn(m, m, device=device, dtype=torch.bfloat16)
        ms = time_ms(lambda: a @ b, device, reps=10)
        out["bf16_matmul_TFLOPs"] = round(2 * m**3 / ms / 1e9, 1)
    else:
        m = 1024
        for dtype, key in ((torch.float32, "fp32_matmul_TFLOPs"), (torch.bfloat16, "bf16_matmul_TFLOPs")):
            a, b = torch.randn(m, m, dtype=dtype), torch.randn(m, m, dtype=dtype)
            ms = time_ms(lambda: a @ b, device, reps=10)
            out[key] = round(2 * m**3 / ms / 1e9, 5)
    return out


def time_interleaved_ms(fns: dict, warmup: int = 2, reps: int = 5) -> dict:
    """Median wall time in ms of each of fns (name -> callable) on the CPU, the callables taking
    turns within every repetition, so that load from other processes hits all of them alike."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict = {n: [] for n in fns}
    for _ in range(reps):
        for n, f in fns.items():
            t = time.perf_counter()
            f()
            times[n].append((time.perf_counter() - t) * 1e3)
    return {n: statistics.median(ts) for n, ts in times.items()}


# ---- rope -----------------------------------------------------------------------------------

ROPE_SHAPES = {
    "af2": dict(B=8, S=1920, H=8, D=256, rotary_dim=128, window_size=64),
    "small": dict(B=2, S=192, H=8, D=64, rotary_dim=64, window_size=64),
}


def _fwd_bwd(fn, x, g):
    def run():
        y = fn(x)
        torch.autograd.grad(y, x, g)

    return run


def rope_results(device: torch.device, ceil: dict, quick: bool) -> list:
    dtypes = [torch.bfloat16] if device.type == "cuda" else [torch.float32, torch.bfloat16]
    results = []
    for name, shp in ROPE_SHAPES.items():
        B, S, H, D, rd, ws = (shp[k] for k in ("B", "S", "H", "D", "rotary_dim", "window_size"))
        for dtype in dtypes:
            x = torch.randn(B, S, H, D, device=device, dtype=dtype, requires_grad=True)
            g = torch.randn_like(x)
            ours = lambda t: rope_windowed(t, window_size=ws, rotary_dim=rd)
            eager = lambda t: R.rope_windowed(t, window_size=ws, rotary_dim=rd)
            for mode in ("fwd", "fwd+bwd"):
                if mode == "fwd":
                    f_ours, f_eager = (lambda: ours(x.detach())), (lambda: eager(x.detach()))
                else:
                    f_ours, f_eager = _fwd_bwd(ours, x, g), _fwd_bwd(eager, x, g)
                reps = 10 if quick else (30 if device.type == "cuda" else 10)
                ms = time_ms(f_ours, device, reps=reps)
                base_ms = time_ms(f_eager, device, reps=reps)
                nbytes = 2 * x.numel() * x.element_size() * (2 if mode == "fwd+bwd" else 1)
                gbps = nbytes / ms / 1e6
                results.append(
                    {
                        "op": "rope_windowed",
                        "mode": mode,
                        "dtype": str(dtype)[6:],
                        "shape": {**shp, "name": name},
                        "ms": round(ms, 4),
                        "peak_mem_MB": peak_mem_mb(f_ours, device),
                        "baseline": "eager",
                        "baseline_ms": round(base_ms, 4),
                        "baseline_peak_mem_MB": peak_mem_mb(f_eager, device),
                        "ratio": round(base_ms / ms, 2),
                        "target": 3.0,
                        "achieved": f"{gbps:.0f} GB/s = {100 * gbps / ceil['copy_GBps']:.0f}% "
                        "of measured copy bandwidth",
                    }
                )
    results += liger_rope_results(device, ceil, quick)
    return results


def liger_rope_results(device: torch.device, ceil: dict, quick: bool) -> list:
    """Plain RoPE (no offsets, full rotary) on q and k: af2's one-launch qk op vs Liger's."""
    if device.type != "cuda":
        return []
    try:
        from liger_kernel.ops.rope import LigerRopeFunction
    except ImportError:
        print("liger_kernel not importable: skipping the Liger comparison", file=sys.stderr)
        return []
    B, S, Hq, Hk, D = 8, 1920, 8, 8, 128
    shp = dict(B=B, S=S, Hq=Hq, Hk=Hk, D=D, rotary_dim=D, window_size=S)
    q = torch.randn(B, S, Hq, D, device=device, dtype=torch.bfloat16)
    k = torch.randn(B, S, Hk, D, device=device, dtype=torch.bfloat16)
    # Liger takes (B, H, S, D) views and cos/sin tables (1, S, D), built once outside the timing.
    theta = R.rope_theta(4096.0, D, device=device)
    ang = torch.arange(S, device=device, dtype=torch.float32)[:, None] * theta
    ang = torch.cat((ang, ang), dim=-1)[None]
    cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)
    ql, kl = q.clone().transpose(1, 2), k.clone().transpose(1, 2)
    ours = lambda: rope_windowed_qk(q, k, window_size=S, base=4096.0)
    liger = lambda: LigerRopeFunction.apply(ql, kl, cos, sin)
    # Correctness of the comparison itself: Liger (in place) on fresh copies equals ours.
    qc, kc = q.clone().transpose(1, 2), k.clone().transpose(1, 2)
    lq, lk = LigerRopeFunction.apply(qc, kc, cos, sin)
    oq, ok = ours()
    err = max(
        (lq.transpose(1, 2).float() - oq.float()).abs().max().item(),
        (lk.transpose(1, 2).float() - ok.float()).abs().max().item(),
    )
    reps = 10 if quick else 50
    ms, base_ms = time_ms(ours, device, reps=reps), time_ms(liger, device, reps=reps)
    nbytes = 2 * (q.numel() + k.numel()) * 2
    gbps = nbytes / ms / 1e6
    return [
        {
            "op": "rope_windowed_qk",
            "mode": "fwd",
            "dtype": "bfloat16",
            "shape": shp,
            "ms": round(ms, 4),
            "peak_mem_MB": peak_mem_mb(ours, device),
            "baseline": "liger_kernel LigerRopeFunction (in place, precomputed cos/sin)",
            "baseline_ms": round(base_ms, 4),
            "ratio": round(base_ms / ms, 2),
            "target": 1.0,
            "max_abs_diff_vs_baseline": err,
            "achieved": f"{gbps:.0f} GB/s = {100 * gbps / ceil['copy_GBps']:.0f}% of measured copy bandwidth",
        }
    ]


# ---- media cross-attention ------------------------------------------------------------------


def media_attn_results(device: torch.device, ceil: dict, quick: bool) -> list:
    """On a GPU bf16; on the CPU fp32 and bf16, every implementation timed in turns
    (time_interleaved_ms), with the fraction of the same run's GEMM rate for the dtype."""
    dtypes = [torch.bfloat16] if device.type == "cuda" else [torch.float32, torch.bfloat16]
    return [row for dtype in dtypes for row in _media_attn_rows(device, ceil, quick, dtype)]


def _media_attn_rows(device: torch.device, ceil: dict, quick: bool, dtype: torch.dtype) -> list:
    results = []
    for name, shp in MEDIA_ATTN_SHAPES.items():
        q, k, v, ks, ke, pad = media_attn_case(**shp, device=device, dtype=dtype, requires_grad=True)
        g = torch.randn_like(q)
        impls = media_attn_impls(q, k, v, ks, ke, pad)
        if NO_EAGER:
            del impls["eager"]
        for mode in ("fwd", "fwd+bwd"):
            fns = {
                n: (f if mode == "fwd" else (lambda f=f: torch.autograd.grad(f(), (q, k, v), g)))
                for n, f in impls.items()
            }
            bases = ["sdpa_mask", "sdpa_nomask"] if NO_EAGER else ["eager", "sdpa_mask", "sdpa_nomask"]
            if device.type == "cuda" and mode == "fwd+bwd":  # the generic backward, for comparison
                fns["af2_simt_bwd"] = _with_env("AF2_MEDIA_ATTN_BACKWARD", "simt", fns["af2"])
                bases.append("af2_simt_bwd")
            if device.type == "cpu":
                ms = time_interleaved_ms(fns, warmup=1 if quick else 2, reps=3 if quick else 5)
            else:
                ms = {n: time_ms(f, device, warmup=2, reps=10 if quick else 30) for n, f in fns.items()}
            mem = (
                {}
                if NO_EAGER
                else {n: _attn_peak_mb(device, shp, dtype, n, mode, fns[n]) for n in ("af2", "eager", "sdpa_mask")}
            )
            flops = 4 * shp["B"] * shp["H"] * shp["Lq"] * (shp["Lk"] // 2) * shp["Dh"] * (3.5 if mode != "fwd" else 1)
            gemm = ceil.get({torch.float32: "fp32_matmul_TFLOPs", torch.bfloat16: "bf16_matmul_TFLOPs"}.get(dtype, ""))
            gemm_note = (
                f" = {100 * flops / ms['af2'] / 1e9 / gemm:.0f}% of the measured {str(dtype)[6:]} GEMM rate"
                if device.type == "cpu" and gemm
                else ""
            )
            for base in bases:
                results.append(
                    {
                        "op": "media_cross_attention",
                        "mode": mode,
                        "dtype": str(dtype)[6:],
                        "shape": {**shp, "name": name},
                        "ms": round(ms["af2"], 4),
                        "peak_mem_MB": mem.get("af2"),
                        "baseline": base,
                        "baseline_ms": round(ms[base], 4),
                        "baseline_peak_mem_MB": mem.get(base),
                        "ratio": round(ms[base] / ms["af2"], 2),
                        "target": {
                            "eager": 1.5,
                            "sdpa_mask": 1.3 if device.type == "cpu" else 1.5,
                            "sdpa_nomask": 1.0 if device.type == "cpu" else 0.8,
                            "af2_simt_bwd": 1.0,
                        }[base],
                        "achieved": f"{flops / ms['af2'] / 1e6:.1f} GFLOP/s on the attended keys{gemm_note}"
                        + (f"; peak {mem['af2']} MB vs eager {mem['eager']} MB" if mem else ""),
                    }
                )
    return results


def _with_env(name: str, value: str, fn):
    """fn run with the environment variable name set to value (restored afterwards)."""

    def run():
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return fn()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old

    return run


def _attn_peak_mb(device, shp, dtype, impl, mode, fn):
    if device.type == "cuda":
        return round(cuda_peak_mb(fn), 1)
    setup = f"""
        import torch
        from benchmarks.cases import media_attn_case, media_attn_impls
        q, k, v, ks, ke, pad = media_attn_case(**{shp!r}, device='cpu', dtype=torch.float32, requires_grad=True)
        f = media_attn_impls(q, k, v, ks, ke, pad)[{impl!r}]
        g = torch.randn_like(q)
    """
    run = "f()" if mode == "fwd" else "torch.autograd.grad(f(), (q, k, v), g)"
    return round(cpu_peak_mb(textwrap.dedent(setup) + "\n" + run, run), 1)  # one warm-up call first


# ---- contrastive loss -----------------------------------------------------------------------

# docs/design.md targets: M = 2, N = 3, D = 512 against the eager full-logits loss; on a GPU also Inf-CL at
# B = 65,536 (M = 1, N = 0, D = 512: CLIP / CLAP's embedding width, and Inf-CL's head_dim 256 x 2)
# and a loss-side peak-memory probe at B = 262,144. --smoke: tiny shapes, one repetition (checks
# that the section runs; the figures mean nothing).
CONTRASTIVE_SHAPES = {
    "full": dict(
        eager_B={"cuda": [1024, 4096, 16384], "cpu": [1024, 4096, 8192]},
        M=2,
        N=3,
        D=512,
        infcl_B=65536,
        infcl_D=512,
        probe_B=262144,
    ),
    "smoke": dict(eager_B={"cuda": [64], "cpu": [64]}, M=2, N=3, D=64, infcl_B=128, infcl_D=64, probe_B=256),
}


class _kernel_path:
    """Context manager: AF2_CONTRASTIVE_KERNEL=path (simt | tc) for the calls inside."""

    def __init__(self, path):
        self.path, self.old = path, None

    def __enter__(self):
        self.old = os.environ.get("AF2_CONTRASTIVE_KERNEL")
        if self.path is not None:
            os.environ["AF2_CONTRASTIVE_KERNEL"] = self.path

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("AF2_CONTRASTIVE_KERNEL", None)
        else:
            os.environ["AF2_CONTRASTIVE_KERNEL"] = self.old


def _tc_path_applies(dtype: torch.dtype, D: int) -> bool:
    return dtype in (torch.float16, torch.bfloat16) and D % 16 == 0 and 16 <= D <= 1024


def _contrastive_flops(B: int, G: int, M: int, D: int) -> float:
    """The one-process tensor-core algorithm's products, each 2 B G M D flops: 2 score sweeps
    forward (row and column LSEs) and 4 backward (S and dS @ Y in each of the two fused gradient
    kernels). Gathered keys (G > B) take 2 + 8."""
    return 6 * 2 * B * G * M * D


def contrastive_results(device: torch.device, ceil: dict, quick: bool, smoke: bool = False) -> list:
    return list(iter_contrastive(device, ceil, quick, smoke))


def iter_contrastive(device: torch.device, ceil: dict, quick: bool, smoke: bool = False):
    """The contrastive section's rows, one at a time. On a GPU the most telling cases run first
    (bf16 at the two larger B, Inf-CL, the memory probe), then the rest; a job that fails is
    recorded with its error and the others still run; no job starts once time_left() <= 0."""
    shp = CONTRASTIVE_SHAPES["smoke" if smoke else "full"]
    M, N, D = shp["M"], shp["N"], shp["D"]
    dtypes = [torch.bfloat16, torch.float32] if device.type == "cuda" else [torch.float32]
    eager = [
        (
            dict(B=B, M=M, N=N, D=D, dtype=str(dt)[6:]),
            lambda B=B, dt=dt: _contrastive_vs_eager(device, B, M, N, D, dt, smoke),
        )
        for B in shp["eager_B"][device.type]
        for dt in dtypes
    ]
    extra = []
    if device.type == "cuda" or smoke:
        extra.append(
            (
                dict(B=shp["infcl_B"], M=1, N=0, D=shp["infcl_D"], dtype="bfloat16"),
                lambda: infcl_results(device, quick, shp["infcl_B"], shp["infcl_D"], smoke),
            )
        )
        extra.append(
            (
                dict(B=shp["probe_B"], M=1, N=0, D=shp["infcl_D"], dtype="bfloat16"),
                lambda: contrastive_memory_probe(device, shp["probe_B"], shp["infcl_D"]),
            )
        )
    if device.type == "cuda" and not smoke:
        first = [j for j in eager if j[0]["dtype"] == "bfloat16" and j[0]["B"] in shp["eager_B"]["cuda"][1:]]
        jobs = first + extra + [j for j in eager if j not in first]
    else:
        jobs = eager + extra
    for shape, job in jobs:
        if time_left() <= 0:
            dtype = shape.pop("dtype")
            print(f"contrastive_loss {shape}: skipped (time budget spent)", file=sys.stderr)
            yield {
                "op": "contrastive_loss",
                "mode": "fwd+bwd",
                "dtype": dtype,
                "shape": shape,
                "ms": None,
                "target": None,
                "skipped": "time budget spent",
                "achieved": "skipped",
            }
            continue
        try:
            yield job()
        except Exception as e:  # noqa: BLE001
            print(f"contrastive_loss {shape}: {type(e).__name__}: {e}", file=sys.stderr)
            dtype = shape.pop("dtype")
            yield {
                "op": "contrastive_loss",
                "mode": "fwd+bwd",
                "dtype": dtype,
                "shape": shape,
                "ms": None,
                "target": None,
                "error": f"{type(e).__name__}: {str(e)[:500]}",
                "achieved": "failed",
            }
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _contrastive_vs_eager(device, B, M, N, D, dtype, smoke) -> dict:
    setup = f"""
        import torch, torch.nn.functional as F
        from af2.ops import contrastive_loss
        from af2 import reference as R
        torch.manual_seed(0)
        dev = {device.type!r}
        unit = lambda *s: F.normalize(torch.randn(*s, device=dev), dim=-1).to({str(dtype)}).requires_grad_()
        a, t, h = unit({B}, {D}), unit({B}, {M}, {D}), unit({B}, {M}, {N}, {D})
    """
    scope: dict = {}
    exec(textwrap.dedent(setup), scope)
    a, t, h = scope["a"], scope["t"], scope["h"]
    fns = {
        "af2": lambda: contrastive_loss(a, t, logit_scale=10.0, hard_negatives=h).backward(),
        "eager": lambda: R.contrastive_loss(a, t, logit_scale=10.0, hard_negatives=h).backward(),
    }
    reps = 1 if smoke or (device.type == "cpu" and B >= 4096) else 3
    ms = {n: time_ms(f, device, warmup=1, reps=reps) for n, f in fns.items()}
    if device.type == "cuda":
        mem = {n: round(cuda_peak_mb(f), 1) for n, f in fns.items()}
    else:
        calls = {
            "af2": "contrastive_loss(a, t, logit_scale=10.0, hard_negatives=h).backward()",
            "eager": "R.contrastive_loss(a, t, logit_scale=10.0, hard_negatives=h).backward()",
        }
        mem = {n: round(cpu_peak_mb(setup, c), 1) for n, c in calls.items()}  # one call: slow at this B
    row = {
        "op": "contrastive_loss",
        "mode": "fwd+bwd",
        "dtype": str(dtype)[6:],
        "shape": {"B": B, "M": M, "N": N, "D": D},
        "ms": round(ms["af2"], 2),
        "peak_mem_MB": mem["af2"],
        "baseline": "eager full logits",
        "baseline_ms": round(ms["eager"], 2),
        "baseline_peak_mem_MB": mem["eager"],
        "ratio": round(ms["eager"] / ms["af2"], 2),
        "target": 1.2,
        "memory_ratio": round(mem["eager"] / max(mem["af2"], 1e-9), 1),
    }
    tflops = _contrastive_flops(B, B, M, D) / ms["af2"] / 1e9
    row["achieved"] = f"{tflops:.1f} TFLOP/s; peak memory {mem['af2']:.0f} MB vs eager {mem['eager']:.0f} MB"
    if device.type == "cuda":
        kernel = "tc" if _tc_path_applies(dtype, D) and os.environ.get("AF2_CONTRASTIVE_KERNEL") != "simt" else "simt"
        row["kernel"] = kernel
        if kernel == "tc":  # the same call on the SIMT kernels, for the speed-up of the tensor-core path
            with _kernel_path("simt"):
                row["simt_ms"] = round(time_ms(fns["af2"], device, warmup=1, reps=1 if B >= 16384 else reps), 2)
            row["tc_speedup_vs_simt"] = round(row["simt_ms"] / ms["af2"], 2)
    return row


def infcl_results(device: torch.device, quick: bool, B: int = 65536, D: int = 512, smoke: bool = False) -> dict:
    """af2 vs Inf-CL's cal_inf_loss (symmetric: the mean of its two directions) at M = 1, N = 0, bf16
    inputs (Inf-CL upcasts to float32 and runs its Triton kernels; af2 runs its bf16 tensor-core
    path). When inf_cl is not importable (or on the CPU) the row keeps af2's figures and a note."""
    import torch.nn.functional as F

    dtype = torch.bfloat16
    g = torch.Generator(device=device).manual_seed(0)
    a = F.normalize(torch.randn(B, D, device=device, generator=g), dim=-1).to(dtype).requires_grad_()
    t = F.normalize(torch.randn(B, D, device=device, generator=g), dim=-1).to(dtype).requires_grad_()
    scale = 10.0
    ours = lambda: contrastive_loss(a, t[:, None], logit_scale=scale)
    ours_fb = lambda: ours().backward()
    reps = 1 if smoke else (3 if quick else 5)
    ms = time_ms(ours_fb, device, warmup=1, reps=reps)
    row = {
        "op": "contrastive_loss",
        "mode": "fwd+bwd",
        "dtype": str(dtype)[6:],
        "shape": {"B": B, "M": 1, "N": 0, "D": D},
        "ms": round(ms, 2),
        "peak_mem_MB": round(cuda_peak_mb(ours_fb), 1) if device.type == "cuda" else None,
        "baseline": None,
        "target": 1.0,
    }
    if device.type == "cuda":
        row["kernel"] = (
            "tc" if _tc_path_applies(dtype, D) and os.environ.get("AF2_CONTRASTIVE_KERNEL") != "simt" else "simt"
        )
    tflops = _contrastive_flops(B, B, 1, D) / ms / 1e9
    row["achieved"] = f"{tflops:.1f} TFLOP/s (6 x 2 B^2 D flops)"
    if "bf16_matmul_TFLOPs" in (ceil := CEILINGS):
        row["achieved"] += f" = {100 * tflops / ceil['bf16_matmul_TFLOPs']:.0f}% of the measured bf16 matmul rate"
    cal_inf_loss, why = None, None
    if device.type != "cuda":
        why = "Inf-CL runs on CUDA only"
    else:
        try:
            from inf_cl import cal_inf_loss
        except Exception as e:  # ImportError, or triton failing to import
            why = f"inf_cl not importable ({type(e).__name__}: {e}); pip install benchmarks/wheels/inf_cl-*.whl"
    if cal_inf_loss is None:
        print(f"{why}: skipping the Inf-CL comparison", file=sys.stderr)
        row["note"] = f"{why}: Inf-CL comparison skipped"
        return row
    s = torch.tensor(scale, device=device)  # no grad: Inf-CL all-reduces the scale's gradient

    def theirs():
        return (cal_inf_loss(a, t, scale=s) + cal_inf_loss(t, a, scale=s)) / 2

    with torch.no_grad():
        diff = abs(ours().item() - theirs().item())
    theirs_fb = lambda: theirs().backward()
    base = time_ms(theirs_fb, device, warmup=1, reps=reps)
    row.update(
        baseline="inf_cl cal_inf_loss (symmetric: two calls; float32 Triton)",
        baseline_ms=round(base, 2),
        baseline_peak_mem_MB=round(cuda_peak_mb(theirs_fb), 1),
        ratio=round(base / ms, 2),
        loss_abs_diff_vs_baseline=diff,
    )
    return row


def contrastive_memory_probe(device: torch.device, B: int = 262144, D: int = 512) -> dict:
    """Loss-side peak memory of one fwd+bwd at B = 262,144 (M = 1, N = 0, bf16): af2 only (the eager
    loss would need B^2 logits). Peak is the allocator's growth over the inputs (CUDA) or the
    process RSS growth (CPU)."""
    dtype = torch.bfloat16
    logits_mb = B * B * 4 / 2**20
    row = {
        "op": "contrastive_loss",
        "mode": "fwd+bwd",
        "dtype": str(dtype)[6:],
        "shape": {"B": B, "M": 1, "N": 0, "D": D},
        "probe": "loss-side peak memory (eager would need B^2 logits)",
        "baseline": None,
        "target": None,
    }
    if device.type == "cuda":
        import torch.nn.functional as F

        a = F.normalize(torch.randn(B, D, device=device), dim=-1).to(dtype).requires_grad_()
        t = F.normalize(torch.randn(B, 1, D, device=device), dim=-1).to(dtype).requires_grad_()
        fn = lambda: contrastive_loss(a, t, logit_scale=10.0).backward()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        peak = cuda_peak_mb(fn)  # one call, synchronised
        row["ms"] = round((time.perf_counter() - t0) * 1e3, 1)
    else:
        setup = f"""
            import torch, torch.nn.functional as F
            from af2.ops import contrastive_loss
            a = F.normalize(torch.randn({B}, {D}), dim=-1).to(torch.bfloat16).requires_grad_()
            t = F.normalize(torch.randn({B}, 1, {D}), dim=-1).to(torch.bfloat16).requires_grad_()
        """
        peak = cpu_peak_mb(setup, "contrastive_loss(a, t, logit_scale=10.0).backward()")
        row["ms"] = None
    row["peak_mem_MB"] = None if peak is None else round(peak, 1)
    inputs_mb = 2 * B * D * 2 / 2**20
    row["achieved"] = (
        f"peak {row['peak_mem_MB']} MB over {inputs_mb:.0f} MB of inputs; one float32 B x B logits "
        f"matrix would be {logits_mb:.0f} MB"
    )
    return row


# ---- the whole model ------------------------------------------------------------------------


def iter_model(device: torch.device, ceil: dict, quick: bool, smoke: bool = False):
    """af2-3b (--smoke: tiny) stage-1 training step fused vs eager, and 30-window batch-8
    inference (benchmarks/model_report.py)."""
    from benchmarks.model_report import model_rows

    yield from model_rows(device, time_ms, quick, smoke=smoke, time_left=time_left)


# ---- main -----------------------------------------------------------------------------------

OPS = {"rope": rope_results, "media_attn": media_attn_results, "contrastive": iter_contrastive, "model": iter_model}
SMOKE_OPS = {"contrastive", "model"}


def git_commit() -> str:
    env = os.environ.get("AF2_COMMIT")
    if env:
        return env
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU {line.split(':', 1)[1].strip()} x{torch.get_num_threads()} threads"
    except OSError:
        pass
    return f"CPU x{torch.get_num_threads()} threads"


def _print_row(r: dict) -> None:
    shape = r["shape"].get("name") or ",".join(f"{k}{v}" for k, v in r["shape"].items() if k in ("B", "M", "N", "W"))
    fmt = lambda x, spec: "-" if x is None else format(x, spec)
    print(
        f"{r['op']:<24}{r['mode']:<14}{r['dtype']:<10}{shape:<14}{fmt(r['ms'], '10.3f')}"
        f"{str(r.get('baseline') or '-')[:20]:>22}{fmt(r.get('baseline_ms'), '10.3f')}{fmt(r.get('ratio'), '7.2f')}"
        f"{str(r['target'])[:7]:>8}  {r['achieved']}",
        flush=True,
    )


def _header() -> None:
    print(
        f"{'op':<24}{'mode':<14}{'dtype':<10}{'shape':<14}{'ms':>10}{'baseline':>22}{'base ms':>10}{'ratio':>7}"
        f"{'target':>8}  achieved",
        flush=True,
    )


def results_path(out_dir: Path, name: str, today: str) -> Path:
    """<out>/<device slug>-<date>.json, or -2, -3, ... : results are evidence, never overwritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    path = out_dir / f"{slug}-{today}.json"
    n = 2
    while path.exists():
        path = out_dir / f"{slug}-{today}-{n}.json"
        n += 1
    return path


def write_report(path: Path, report: dict) -> None:
    """Atomic (re)write: a kill leaves the previous complete file, never a truncated one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    global DEADLINE, NO_EAGER
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes and one repetition, to check that the script runs (contrastive and model only)",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="seconds for the whole run: once spent, sections start no new measurement",
    )
    ap.add_argument(
        "--into",
        default=None,
        help="results JSON to continue (created if absent) instead of a new file under --out: "
        "one file for sections run by separate processes (benchmarks/gpu_check.sh)",
    )
    ap.add_argument(
        "--no-eager", action="store_true", help="media attention: leave out the (slow) eager twin and the memory probes"
    )
    args = ap.parse_args(argv)
    if args.smoke and not set(args.ops) <= SMOKE_OPS:
        ap.error(f"--smoke is implemented for --ops {' '.join(sorted(SMOKE_OPS))} only")
    DEADLINE = float("inf") if args.budget_s is None else time.monotonic() + args.budget_s
    NO_EAGER = args.no_eager

    info = af2.build_info()
    device = torch.device("cuda" if info["cuda_available"] else "cpu")
    torch.manual_seed(0)
    ceil = ceilings(device, args.quick)
    CEILINGS.update(ceil)
    name = device_name(device)
    today = dt.date.today().isoformat()
    report = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "commit": git_commit(),
        "date": today,
        "note": args.note + (" [smoke run]" if args.smoke else ""),
        "build": info,
        "ceilings": ceil,
        "sections": list(args.ops),
        "sections_done": [],
        "results": [],
    }
    if args.into:
        path = Path(args.into)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            report = json.loads(path.read_text())
            if report["device"] != name or report["commit"] != git_commit():
                ap.error(
                    f"--into {path}: it holds results of {report['device']} at {report['commit']}, "
                    f"not {name} at {git_commit()}"
                )
            report["sections"] += [op for op in args.ops if op not in report["sections"]]
    else:
        path = results_path(Path(args.out), name, today)
    results: list = report["results"]
    write_report(path, report)
    print(f"device: {name}; ceilings: {ceil}; writing {path}", flush=True)
    _header()
    status = 0
    for op in args.ops:
        try:
            for row in OPS[op](device, ceil, args.quick, **({"smoke": True} if args.smoke else {})):
                results.append(row)
                write_report(path, report)
                _print_row(row)
        except Exception as e:  # noqa: BLE001  (a failing section is recorded; the next still runs)
            print(f"section {op} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            results.append(
                {
                    "op": op,
                    "mode": "section",
                    "dtype": "-",
                    "shape": {},
                    "ms": None,
                    "target": None,
                    "error": f"{type(e).__name__}: {str(e)[:1000]}",
                    "achieved": "failed",
                }
            )
            status = 1
        else:
            report["sections_done"].append(op)
        write_report(path, report)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
