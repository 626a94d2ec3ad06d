"""setup.py's choice of the CUDA build (AF2_BUILD_CUDA) and its failure messages, without building:
the failing paths stop before any compilation, and cuda_plan is a pure function."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_py():
    """setup.py imported as a module (its main() runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("af2_setup_under_test", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_setup(mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AF2_BUILD_CUDA": mode}
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_invalid_mode_is_rejected_by_name():
    proc = _run_setup("yes")
    assert proc.returncode != 0
    assert "af2 build error: AF2_BUILD_CUDA must be auto, 0 or 1, got 'yes'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.version.cuda is not None, reason="torch is a CUDA build: AF2_BUILD_CUDA=1 would build")
def test_cuda_1_with_cpu_torch_fails_clearly():
    proc = _run_setup("1")
    assert proc.returncode != 0
    assert (
        f"af2 build error: AF2_BUILD_CUDA=1 but torch {torch.__version__} is a CPU-only build; "
        "install a CUDA build of torch or use AF2_BUILD_CUDA=auto"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_zero_and_cpu_torch(setup_py):
    assert setup_py.cuda_plan("0", "2.13.0", "13.0", "/cuda", "13.0") == (False, "AF2_BUILD_CUDA=0")
    assert setup_py.cuda_plan("auto", "2.13.0+cpu", None, "/cuda", None) == (
        False,
        "torch 2.13.0+cpu is a CPU-only build",
    )
    assert setup_py.cuda_plan("auto", "2.11.0", "13.0", None, None) == (False, "no CUDA toolkit (nvcc) was found")
    assert setup_py.cuda_plan("auto", "2.11.0", "13.0", "/cuda", "13.0") == (True, "")
    assert setup_py.cuda_plan("auto", "2.11.0", "13.0", "/cuda", "13.2") == (True, "")  # minor may differ
    assert setup_py.cuda_plan("1", "2.11.0", "13.0", "/cuda", "13.0") == (True, "")
    assert setup_py.cuda_plan("auto", "2.11.0", "13.0", "/cuda", None) == (True, "")  # unreadable: torch decides


def test_plan_auto_with_other_nvcc_major_builds_the_cpu_core(setup_py):
    ok, note = setup_py.cuda_plan("auto", "2.11.0+cu130", "13.0", "/opt/cuda-12.4", "12.4")
    assert not ok
    assert note == (
        "nvcc in /opt/cuda-12.4 is CUDA 12.4 but torch 2.11.0+cu130 was built with CUDA 13.0; "
        "the major versions must match (set CUDA_HOME to a CUDA 13.x toolkit)"
    )


def test_plan_one_fails_clearly(setup_py):
    with pytest.raises(SystemExit, match=r"AF2_BUILD_CUDA=1 but torch 2.13.0\+cpu is a CPU-only build"):
        setup_py.cuda_plan("1", "2.13.0+cpu", None, "/cuda", None)
    with pytest.raises(SystemExit, match=r"AF2_BUILD_CUDA=1 but no CUDA toolkit was found \(set CUDA_HOME"):
        setup_py.cuda_plan("1", "2.11.0", "13.0", None, None)
    with pytest.raises(
        SystemExit,
        match=r"AF2_BUILD_CUDA=1 but nvcc in /c is CUDA 12.4 but torch 2.11.0 was built "
        r"with CUDA 13.0; the major versions must match",
    ):
        setup_py.cuda_plan("1", "2.11.0", "13.0", "/c", "12.4")
    with pytest.raises(SystemExit, match=r"AF2_BUILD_CUDA must be auto, 0 or 1, got 'on'"):
        setup_py.cuda_plan("on", "2.11.0", "13.0", "/c", "13.0")


def test_want_cuda_prints_the_mismatch_warning(setup_py, monkeypatch, capsys, tmp_path):
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text(
        "#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
        "echo 'Cuda compilation tools, release 12.4, V12.4.131'\n"
    )
    nvcc.chmod(0o755)
    assert setup_py.nvcc_release(str(tmp_path)) == "12.4"
    assert setup_py.nvcc_release(str(tmp_path / "none")) is None
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    ok, note = setup_py.want_cuda("auto", str(tmp_path))
    assert not ok and "is CUDA 12.4 but torch" in note and "built with CUDA 13.0" in note
    err = capsys.readouterr().err
    assert "af2 build warning: building the CPU core only: nvcc in" in err
    assert "set AF2_BUILD_CUDA=1 to insist on CUDA" in err


def test_build_info_says_why_cuda_is_absent():
    import af2

    info = af2.build_info()
    assert isinstance(info["cuda_note"], str)
    assert (info["cuda_note"] == "") == bool(info["cuda"])


def test_cutlass_headers_from_the_override_variables(setup_py, tmp_path):
    (tmp_path / "checkout" / "include" / "cute").mkdir(parents=True)
    include = str(tmp_path / "checkout" / "include")
    assert setup_py.cutlass_include({"AF2_CUTLASS_INCLUDE": include}) == include
    assert setup_py.cutlass_include({"CUTLASS_PATH": str(tmp_path / "checkout")}) == include  # its include/
    assert setup_py.cutlass_include({"CUTLASS_PATH": include}) == include  # or itself
    assert setup_py.cutlass_include({"AF2_CUTLASS_INCLUDE": include, "CUTLASS_PATH": "/nowhere"}) == include
    with pytest.raises(
        SystemExit, match=r"AF2_CUTLASS_INCLUDE='/nowhere' holds no CuTe headers \(looked for /nowhere/cute\)"
    ):
        setup_py.cutlass_include({"AF2_CUTLASS_INCLUDE": "/nowhere"})
    with pytest.raises(SystemExit, match=r"CUTLASS_PATH='/nowhere' holds no CuTe headers"):
        setup_py.cutlass_include({"CUTLASS_PATH": "/nowhere"})


def test_cutlass_missing_builds_the_cpu_core_in_auto_and_fails_in_1(setup_py):
    assert setup_py.cutlass_plan("auto", "/cutlass/include") == (True, "")
    ok, note = setup_py.cutlass_plan("auto", None)
    assert not ok and note.startswith("no CUTLASS/CuTe headers were found (the CUDA kernels need")
    with pytest.raises(
        SystemExit,
        match=r"AF2_BUILD_CUDA=1 but the CUDA kernels need the CUTLASS/CuTe headers: "
        r"pip install --no-deps nvidia-cutlass, or set AF2_CUTLASS_INCLUDE",
    ):
        setup_py.cutlass_plan("1", None)


def test_cpu_build_never_asks_for_cutlass(tmp_path):
    """A CPU-only configuration runs setup.py to its end (egg_info builds nothing) even with a
    CUTLASS_PATH that holds no headers: CUTLASS is looked for only when CUDA kernels are built."""
    env = {**os.environ, "AF2_BUILD_CUDA": "0", "CUTLASS_PATH": str(tmp_path / "none")}
    proc = subprocess.run(
        [sys.executable, "setup.py", "egg_info", "--egg-base", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CUTLASS" not in proc.stderr


def test_only_building_commands_write_the_build_facts(setup_py):
    assert not setup_py.builds(["sdist", "--formats", "gztar", "--dist-dir", "/tmp/d"])
    assert not setup_py.builds(["egg_info"]) and not setup_py.builds(["dist_info", "--output-dir", "x"])
    for cmd in (["bdist_wheel", "--dist-dir", "d"], ["build_ext", "--inplace"], ["editable_wheel"], ["install"]):
        assert setup_py.builds(cmd)


def test_wheel_packages_include_the_trainer(setup_py):
    from setuptools import find_packages

    found = find_packages(str(ROOT), include=setup_py.PACKAGES)
    assert {"af2", "af2.ops", "af2.model", "training"} <= set(found)
    assert not [p for p in found if p.startswith(("tests", "benchmarks"))]


def test_cpu_variants_per_arch(setup_py):
    variants = setup_py.cpu_variants
    assert variants(None, "x86_64") == [("avx2", ["-march=x86-64-v3"]), ("avx512", ["-march=x86-64-v4"])]
    assert variants("dispatch", "AMD64") == variants(None, "x86_64")
    assert variants(None, "aarch64") == [("native", ["-march=native"])]  # no dispatch off x86-64
    assert variants("native", "x86_64") == [("native", ["-march=native"])]
    assert variants("none", "x86_64") == [("generic", [])]
    assert variants("", "x86_64") == [("generic", [])]
    assert variants("skylake-avx512", "x86_64") == [("custom", ["-march=skylake-avx512"])]


def test_cpu_variants_bad_values_fail_clearly(setup_py):
    with pytest.raises(SystemExit, match="AF2_CPU_ARCH=dispatch needs an x86-64 machine, this one is 'aarch64'"):
        setup_py.cpu_variants("dispatch", "aarch64")
    with pytest.raises(SystemExit, match="AF2_CPU_ARCH must be dispatch, native, none or a -march value, got 'a b'"):
        setup_py.cpu_variants("a b", "x86_64")


def test_variant_symbol_leaks_finds_af2_code_outside_the_variant(setup_py):
    lines = [
        "_ZN3af26avx5122mk11scores_tileIfLi64EEEvPKT_S5_llPS3_ W 0 0",  # in af2::avx512: fine
        "_ZNSt6vectorIfSaIfEE17_M_default_appendEm W 0 0",  # the standard library's: linked lowest first
        "DW.ref.__gxx_personality_v0 V 0 8",
        "_ZN3af26avx51222media_attn_forward_cpuENS_5DTypeERKNS_15MediaAttnParamsE T 0 10",
        "_ZN3af28to_floatENS_6bf16_tE W 0 0",  # af2::to_float outside the variant: merged by the linker
        "_ZN3af24avx22mk4vexpEf W 0 0",  # another variant's namespace
        "_ZZN3af25vexp2Ef W 0 0",
    ]
    assert setup_py.variant_symbol_leaks(lines, "avx512") == [
        "_ZN3af28to_floatENS_6bf16_tE",
        "_ZN3af24avx22mk4vexpEf",
        "_ZZN3af25vexp2Ef",
    ]
    assert setup_py.variant_symbol_leaks(lines[:4], "avx512") == []
