"""Collects each benchmark's median and prints af2-vs-baseline ratios at the end of the run.

A benchmark records itself with ``record(group, impl, benchmark)``; the group names the
shape/dtype/mode, impl is "af2" or a baseline. Ratios (baseline time / af2 time) and the
targets of the issues are printed in an 'af2 benchmark ratios' section.
"""

from __future__ import annotations

from collections import defaultdict

_MEDIANS: dict = defaultdict(dict)
_TARGETS: dict = {}


def record(group: str, impl: str, benchmark, target: float | None = None) -> None:
    if benchmark.stats is None:  # --benchmark-disable: the function ran once, untimed
        return
    _MEDIANS[group][impl] = benchmark.stats.stats.median
    if target is not None:
        _TARGETS[group] = target


def pytest_terminal_summary(terminalreporter):
    if not _MEDIANS:
        return
    terminalreporter.section("af2 benchmark ratios (baseline time / af2 time; > 1 means af2 is faster)")
    for group, impls in sorted(_MEDIANS.items()):
        if "af2" not in impls:
            continue
        ours = impls["af2"]
        parts = [f"af2 {ours * 1e3:.3f} ms"]
        for impl, t in sorted(impls.items()):
            if impl != "af2":
                parts.append(f"{impl} {t * 1e3:.3f} ms -> ratio {t / ours:.2f}x")
        target = _TARGETS.get(group)
        if target is not None:
            parts.append(f"target {target:g}x")
        terminalreporter.write_line(f"{group}: " + "; ".join(parts))
