"""Builds the torch-free core with CMake (CUDA kernels too when nvcc is present) and runs its
C++ unit tests under ctest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cuda_compile import _nvcc, cutlass_include

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not found")
def test_cmake_build_and_ctest(tmp_path):
    build = tmp_path / "build"
    cuda = "ON" if _nvcc() and cutlass_include() else "OFF"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            *gen,
            f"-DAF2_CUDA={cuda}",
            *(
                [f"-DCMAKE_CUDA_COMPILER={_nvcc()}", f"-DAF2_CUTLASS_INCLUDE={cutlass_include()}"]
                if cuda == "ON"
                else []
            ),
        ],
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    bld = subprocess.run(["cmake", "--build", str(build), "--parallel", "2"], capture_output=True, text=True)
    assert bld.returncode == 0, bld.stdout[-5000:] + bld.stderr[-3000:]
    test = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout[-5000:] + test.stderr[-2000:]
    assert "100% tests passed" in test.stdout
