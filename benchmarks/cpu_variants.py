"""Two builds of af2's CPU kernels side by side: times the same CPU op cases with each build in
alternating subprocesses (one build per process: both are `af2._C`), so machine load hits both
alike, and prints the ratio of the medians per case.

  python benchmarks/cpu_variants.py --a DIR_A --b DIR_B [--label-a native] [--label-b dispatch]
                                    [--rounds 5] [--out FILE.json]

DIR_A / DIR_B: source trees whose af2/_C*.so is built (e.g. one with AF2_CPU_ARCH=native, one
with the default dispatching build). With --isa-b avx2 the B processes run with AF2_CPU_ISA=avx2.
Ratio = A's median / B's median (> 1: B is faster). With --into, the rows are appended to a
results JSON of benchmarks/report.py (its row format: op, mode, dtype, ms = B's median,
baseline = A, ratio; target 0.9 = B within 10% of A), with the CPU model and both builds'
variants in its "cpu_variants" entry.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def _cases():
    """name -> callable, the CPU op cases (AF2 shapes, a few seconds in all)."""
    import torch

    from af2.ops import contrastive_loss, gated_residual, rope_windowed
    from benchmarks.cases import MEDIA_ATTN_SHAPES, media_attn_case, media_attn_impls

    torch.manual_seed(0)
    cases = {}
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        shp = MEDIA_ATTN_SHAPES["Lk576"]
        q, k, v, ks, ke, pad = media_attn_case(**shp, device="cpu", dtype=dtype, requires_grad=True)
        fwd = media_attn_impls(q, k, v, ks, ke, pad)["af2"]
        g = torch.randn(q.shape, dtype=dtype)
        cases[f"media_cross_attention fwd {tag} Lk576"] = lambda fwd=fwd: fwd()
        cases[f"media_cross_attention fwd+bwd {tag} Lk576"] = lambda fwd=fwd, g=g, ins=(q, k, v): torch.autograd.grad(
            fwd(), ins, g
        )
        a = torch.nn.functional.normalize(torch.randn(1024, 512, dtype=dtype), dim=-1).requires_grad_()
        t = torch.nn.functional.normalize(torch.randn(1024, 2, 512, dtype=dtype), dim=-1).requires_grad_()
        n = torch.nn.functional.normalize(torch.randn(1024, 2, 3, 512, dtype=dtype), dim=-1).requires_grad_()
        cases[f"contrastive_loss fwd+bwd {tag} B1024"] = lambda a=a, t=t, n=n: torch.autograd.grad(
            contrastive_loss(a, t, logit_scale=torch.tensor(10.0), hard_negatives=n), (a, t, n)
        )
        x = torch.randn(8, 1920, 8, 256, dtype=dtype, requires_grad=True)
        gx = torch.randn(x.shape, dtype=dtype)
        cases[f"rope_windowed fwd+bwd {tag}"] = lambda x=x, gx=gx: torch.autograd.grad(
            rope_windowed(x, window_size=64, rotary_dim=128), x, gx
        )
        y = torch.randn(4, 2048, 2048, dtype=dtype)
        cases[f"gated_residual fwd {tag}"] = lambda y=y: gated_residual(y, y, torch.tensor(0.3))
    return cases


def child(only) -> None:
    """Times every case (those whose name contains one of `only`, if given): the median of a few
    runs after a warm-up; prints JSON {case: ms}."""
    import time

    import af2

    out = {"_cpu_isa": af2.build_info()["cpu_isa"], "_vector_isa": af2.build_info()["vector_isa"]}
    for name, fn in _cases().items():
        if only and not any(o in name for o in only):
            continue
        fn()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        out[name] = statistics.median(times)
    print(json.dumps(out))


def _run(tree: str, isa: str | None, only) -> dict:
    env = {**os.environ, "PYTHONPATH": tree}
    env.pop("AF2_CPU_ISA", None)
    if isa:
        env["AF2_CPU_ISA"] = isa
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *(["--only", *only] if only else [])],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        sys.exit(f"the run in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--a", help="source tree of build A")
    ap.add_argument("--b", help="source tree of build B")
    ap.add_argument("--label-a", default="native")
    ap.add_argument("--label-b", default="dispatch")
    ap.add_argument("--isa-a")
    ap.add_argument("--isa-b")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", nargs="+", help="only the cases whose name contains one of these")
    ap.add_argument("--into", help="a benchmarks/report.py results JSON to append the rows to")
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        child(args.only)
        return
    if not (args.a and args.b):
        ap.error("--a and --b are required")
    runs = {args.label_a: [], args.label_b: []}
    for r in range(args.rounds):  # alternate, so load changes hit both builds alike
        order = [(args.label_a, args.a, args.isa_a), (args.label_b, args.b, args.isa_b)]
        for label, tree, isa in order if r % 2 == 0 else order[::-1]:
            runs[label].append(_run(tree, isa, args.only))
            print(f"round {r + 1}/{args.rounds} {label} done", file=sys.stderr)
    cases = [k for k in runs[args.label_a][0] if not k.startswith("_")]
    rows = []
    for case in cases:
        ma = statistics.median(run[case] for run in runs[args.label_a])
        mb = statistics.median(run[case] for run in runs[args.label_b])
        rows.append(
            {
                "case": case,
                f"{args.label_a}_ms": round(ma, 3),
                f"{args.label_b}_ms": round(mb, 3),
                "ratio": round(ma / mb, 3),
            }
        )
        print(f"{case:45s} {args.label_a} {ma:9.2f} ms  {args.label_b} {mb:9.2f} ms  ratio {ma / mb:5.2f}")
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown"
    )
    result = {
        "cpu_model": cpu,
        "threads": os.cpu_count(),
        "rounds": args.rounds,
        "builds": {
            label: {"tree": tree, "cpu_isa": runs[label][0]["_cpu_isa"], "vector_isa": runs[label][0]["_vector_isa"]}
            for label, tree in ((args.label_a, args.a), (args.label_b, args.b))
        },
        "ratio": f"{args.label_a} median / {args.label_b} median (> 1: {args.label_b} faster)",
        "rows": rows,
    }
    if args.into:
        path = Path(args.into)
        report = json.loads(path.read_text())
        report.setdefault("cpu_variants", []).append(result)
        for row in rows:
            op, mode, dtype, *shape = row["case"].split()
            report["results"].append(
                {
                    "op": op,
                    "mode": mode,
                    "dtype": {"fp32": "float32", "bf16": "bfloat16"}[dtype],
                    "shape": {"name": " ".join(shape) or "default"},
                    "ms": row[f"{args.label_b}_ms"],
                    "peak_mem_MB": None,
                    "baseline": f"{args.label_a} build ({result['builds'][args.label_a]['cpu_isa']})",
                    "baseline_ms": row[f"{args.label_a}_ms"],
                    "ratio": row["ratio"],
                    "target": 0.9,
                    "achieved": f"{args.label_b} build on variant {result['builds'][args.label_b]['cpu_isa']}, "
                    f"medians of {args.rounds} alternating processes",
                }
            )
        path.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
