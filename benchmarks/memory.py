"""Peak extra memory of one call, on the CPU (fresh process, peak RSS) or on a GPU (allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def cpu_peak_mb(setup: str, run: str) -> float | None:
    """Peak RSS growth in MB while `run` executes, after `setup`, in a fresh Python process
    (put a warm-up call in `setup` to leave one-time initialisation out of the figure).

    glibc is told to return freed memory at once (small mmap threshold) and the peak is reset
    after setup (/proc/self/clear_refs), so the figure is what `run` itself held at its peak.
    Linux only; None elsewhere.
    """
    if not Path("/proc/self/clear_refs").exists():
        return None
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        def _mb(key):
            return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key)) / 1024
        {textwrap.indent(textwrap.dedent(setup), "        ").strip()}
        open('/proc/self/clear_refs', 'w').write('5')
        _base = _mb('VmRSS')
        {textwrap.indent(textwrap.dedent(run), "        ").strip()}
        print('PEAK', _mb('VmHWM') - _base)
    """)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.split("PEAK")[-1].strip())


def cuda_peak_mb(fn) -> float:
    """Peak allocator growth in MB while fn() runs on the current CUDA device."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20
