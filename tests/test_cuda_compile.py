"""Every CUDA kernel file compiles with nvcc for sm_80 and sm_90a, without register spills.

The .cu files are torch-free, so this runs on machines with a CUDA toolkit and no GPU. The
registers and stack of every kernel are printed in the 'af2 report' section.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import report

ROOT = Path(__file__).resolve().parents[1]
CU_FILES = sorted(ROOT.glob("csrc/**/*.cu"))
ARCHS = {"sm_80": "arch=compute_80,code=sm_80", "sm_90a": "arch=compute_90a,code=sm_90a"}


def _nvcc():
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    cand = Path(home) / "bin" / "nvcc"
    return str(cand) if cand.exists() else None


def _listed_cuda_sources():
    listed = []
    for line in (ROOT / "sources.txt").read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2 and parts[0] == "cuda":
            listed.append(ROOT / parts[1])
    return listed


def cutlass_include():
    """CUTLASS/CuTe headers of the nvidia-cutlass wheel, or None (found without importing it)."""
    spec = importlib.util.find_spec("cutlass_library")
    path = Path(spec.submodule_search_locations[0]) / "source" / "include" if spec else None
    return path if path is not None and (path / "cute").is_dir() else None


def _include_dirs():
    return [ROOT / "csrc", *([cutlass_include()] if cutlass_include() else [])]


def _demangle(names):
    if not names or not shutil.which("c++filt"):
        return names
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout
    return out.splitlines()


def parse_ptxas(text: str) -> list[dict]:
    """Per entry function: registers, stack bytes, spill store/load bytes (ptxas -v output)."""
    kernels, current = [], None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = {"name": m.group(1), "registers": None, "stack": 0, "spill_stores": 0, "spill_loads": 0}
            kernels.append(current)
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m and (current is None or m.group(1) != current["name"]):
            current = next((k for k in kernels if k["name"] == m.group(1)), None)
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["registers"] = int(m.group(1))
    return kernels


def test_every_cu_file_is_in_the_source_list():
    assert CU_FILES, "no csrc/**/*.cu found"
    assert sorted(_listed_cuda_sources()) == CU_FILES


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("cu", CU_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nvcc_compiles_without_spills(cu, arch, tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found")
    if cutlass_include() is None and "cute/" in cu.read_text() + "".join(
        p.read_text() for p in cu.parent.glob("*.cuh")
    ):
        pytest.fail("CUTLASS/CuTe headers not found: pip install --no-deps nvidia-cutlass")
    cmd = [
        nvcc,
        "-std=c++17",
        "-O3",
        "-lineinfo",
        "--expt-relaxed-constexpr",
        "-DAF2_WITH_CUDA",
        *[f"-I{d}" for d in _include_dirs()],
        "-gencode",
        ARCHS[arch],
        "-Xptxas",
        "-v",
        "-c",
        str(cu),
        "-o",
        str(tmp_path / "k.o"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"nvcc failed for {cu} ({arch}):\n{proc.stderr[-6000:]}"
    kernels = parse_ptxas(proc.stderr)
    assert kernels, f"ptxas reported no kernels for {cu}:\n{proc.stderr[-2000:]}"
    names = _demangle([k["name"] for k in kernels])
    for k, name in zip(kernels, names):
        short = re.sub(r"\(.*\)$", "", name.replace("af2::(anonymous namespace)::", ""))
        report(
            f"{cu.relative_to(ROOT)} {arch}: {short}: {k['registers']} registers, "
            f"{k['stack']} B stack, {k['spill_stores']}/{k['spill_loads']} B spill st/ld"
        )
    spilled = [
        (n, k["spill_stores"], k["spill_loads"])
        for k, n in zip(kernels, names)
        if k["spill_stores"] or k["spill_loads"]
    ]
    assert not spilled, f"register spills in {cu} ({arch}): {spilled}"
