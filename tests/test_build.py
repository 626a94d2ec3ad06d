"""af2.build_info(), `python -m af2 info`, and the torch-version guard on import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import af2


def test_build_info_keys_and_values():
    info = af2.build_info()
    assert info["version"] == af2.__version__
    assert info["torch_version"] == torch.__version__
    assert isinstance(info["cuda"], bool)
    if info["cuda"]:
        assert info["cuda_archs"]
    assert info["compiler"].split()[0] in ("gcc", "clang", "msvc")
    assert info["cxx11_abi"] == bool(torch._C._GLIBCXX_USE_CXX11_ABI)  # setup.py passes torch's
    assert info["openmp"].isdigit()  # built with OpenMP
    assert info["vector_isa"]


def test_cli_info_prints_build_info():
    out = subprocess.run([sys.executable, "-m", "af2", "info", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(af2.build_info()))
    text = subprocess.run([sys.executable, "-m", "af2", "info"], capture_output=True, text=True, check=True).stdout
    assert "torch_version" in text and "vector_isa" in text


def test_import_against_other_torch_fails_clearly():
    code = "import torch; torch.__version__ = '0.0.1+other'; import af2.ops"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"af2 was built against torch {torch.__version__} but torch 0.0.1+other is installed" in proc.stderr
    assert "undefined symbol" not in proc.stderr


def test_static_libstdcxx_core_is_refused():
    from af2._extension import check_libstdcxx

    assert af2.build_info()["libstdcxx"] in ("shared", "unknown")  # this build loaded, so not static
    check_libstdcxx("shared")
    check_libstdcxx("unknown")
    with pytest.raises(ImportError, match=r"own static copy of libstdc\+\+.*CC=/usr/bin/gcc CXX=/usr/bin/g\+\+"):
        check_libstdcxx("static")


def test_op_errors_reach_python():
    """An op's argument error arrives as a Python ValueError (a core with a static libstdc++
    crashed here: seen on a GPU image whose g++ linked it statically)."""
    code = (
        "import torch, af2\nfrom af2.ops import rope_windowed\n"
        "try:\n    rope_windowed(torch.randn(2, 8, 2, 8), window_size=3)\n"
        "except ValueError as e:\n    print('caught', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "caught rope_windowed: S must be a multiple of window_size" in proc.stdout


# ---- the CPU kernel variant (docs/cpu_dispatch.md) ----------------------------------------------
CPU_VARIANTS = {"avx2", "avx512", "native", "custom", "generic"}


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_build_info_cpu_isa_keys():
    info = af2.build_info()
    from af2 import _build_meta

    assert info["cpu_isas"] == list(_build_meta.CPU_VARIANTS)  # what setup.py compiled, lowest first
    assert set(info["cpu_isas"]) <= CPU_VARIANTS
    assert info["cpu_isa_error"] == "" and info["cpu_isa"] in info["cpu_isas_runnable"]
    assert set(info["cpu_isas_runnable"]) <= set(info["cpu_isas"])
    assert info["cpu_isa"] == info["cpu_isas_runnable"][-1]  # the automatic choice is the highest
    assert info["cpu_isa_ops"] == {
        op: info["cpu_isa"] for op in ("rope_windowed", "media_cross_attention", "gated_residual", "contrastive_loss")
    }
    assert info["vector_isa"] in ("avx512+bf16", "avx512", "avx2", "avx", "sse4.2", "sse2", "sve", "neon", "scalar")
    if info["cpu_isa"] == "avx2":
        assert info["vector_isa"] == "avx2" and info["float16_native"]
    if info["cpu_isa"] == "avx512":
        assert info["vector_isa"].startswith("avx512")
    flags = open("/proc/cpuinfo").read() if sys.platform == "linux" else ""
    if " avx2 " in flags:
        assert "avx2" in info["cpu_features"].split()
    if "avx2" in info["cpu_isas"]:
        assert ("avx2" in info["cpu_isas_runnable"]) == (
            {"avx2", "fma", "f16c", "bmi2", "movbe"} <= set(info["cpu_features"].split())
        )
    if "avx512" in info["cpu_isas"]:
        assert ("avx512" in info["cpu_isas_runnable"]) == (
            {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(info["cpu_features"].split())
        )


def test_cpu_isa_context_switches_and_restores():
    from af2 import _C
    from af2.build import cpu_isa

    info = af2.build_info()
    for isa in info["cpu_isas_runnable"]:
        with cpu_isa(isa):
            assert af2.build_info()["cpu_isa"] == isa
            assert set(af2.build_info()["cpu_isa_ops"].values()) == {isa}
        assert af2.build_info()["cpu_isa"] == info["cpu_isa"]
    with pytest.raises(ValueError, match=r"'avx3' is not a CPU variant of this build of af2 \(compiled: "):
        _C._set_cpu_isa("avx3")
    for isa in set(info["cpu_isas"]) - set(info["cpu_isas_runnable"]):
        with pytest.raises(ValueError, match=f"CPU variant '{isa}' needs .*this CPU/OS has: "):
            _C._set_cpu_isa(isa)
    assert af2.build_info()["cpu_isa"] == info["cpu_isa"]  # a refused request changes nothing


def test_cpu_isa_environment_variable_forces_a_variant():
    code = (
        "import torch, af2\nfrom af2.ops import gated_residual\n"
        "print(af2.build_info()['cpu_isa'])\n"
        "print(float(gated_residual(torch.ones(3), torch.ones(3), torch.tensor(0.5))[0]))\n"
    )
    for isa in af2.build_info()["cpu_isas_runnable"]:
        proc = _run_python(code, AF2_CPU_ISA=isa)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.split()
        assert lines[0] == isa and abs(float(lines[1]) - (1 + torch.tanh(torch.tensor(0.5)).item())) < 1e-6


def test_bad_cpu_isa_environment_variable_is_named():
    code = (
        "import torch, af2\nfrom af2.ops import gated_residual\ninfo = af2.build_info()\n"
        "print(repr(info['cpu_isa']), info['cpu_isa_error'])\n"
        "try:\n    gated_residual(torch.ones(3), torch.ones(3), torch.tensor(0.5))\n"
        "except RuntimeError as e:\n    print('caught', e)\n"
    )
    proc = _run_python(code, AF2_CPU_ISA="avx3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'' AF2_CPU_ISA=avx3 is not a CPU variant of this build of af2 (compiled: " in proc.stdout
    assert "caught AF2_CPU_ISA=avx3 is not a CPU variant of this build of af2" in proc.stdout
    for isa in set(af2.build_info()["cpu_isas"]) - set(af2.build_info()["cpu_isas_runnable"]):
        proc = _run_python(code, AF2_CPU_ISA=isa)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"caught AF2_CPU_ISA={isa} needs " in proc.stdout and "this CPU/OS has: " in proc.stdout


def _functions_using(registers: str) -> set:
    """Names of the functions of the loaded af2._C whose code names one of `registers` (a regex)."""
    import re
    import shutil

    from af2 import _C

    if shutil.which("objdump") is None:
        pytest.skip("objdump not found")
    asm = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", _C.__file__], capture_output=True, text=True, check=True
    ).stdout
    found, fn, pattern = set(), None, re.compile(registers)
    for line in asm.splitlines():
        if line.endswith(">:"):
            fn = line[line.index("<") + 1 : -2]
        elif fn is not None and pattern.search(line):
            found.add(fn)
    return found


def _local_symbols() -> set:
    """Functions with internal linkage in af2._C (one copy per object file, never merged)."""
    import shutil

    from af2 import _C

    if shutil.which("nm") is None:
        pytest.skip("nm not found")
    out = subprocess.run(["nm", "-P", "--defined-only", _C.__file__], capture_output=True, text=True, check=True).stdout
    return {parts[0] for parts in (line.split() for line in out.splitlines()) if len(parts) > 1 and parts[1] == "t"}


@pytest.mark.skipif("avx512" not in af2.build_info()["cpu_isas"], reason="a dispatching x86-64 build")
def test_only_the_avx512_variant_uses_avx512_registers():
    """A merged (weak) function with AVX-512 code outside af2::avx512 would be called by AVX2 code
    and crash an AVX2 machine: the variants' namespaces and the link order keep that from
    happening (docs/cpu_dispatch.md); this reads the library's code to check it."""
    zmm = _functions_using(r"%zmm|%k[1-7]\b")
    assert any("3af26avx512" in fn for fn in zmm)  # the avx512 variant really is AVX-512 code
    local = _local_symbols()
    assert sorted(fn for fn in zmm if "3af26avx512" not in fn and fn not in local) == []
    # The baseline code (dispatcher, bindings) stays free of AVX altogether.
    ymm = _functions_using(r"%[yz]mm")
    assert sorted(fn for fn in ymm if "3af24base" in fn or "3af24bind" in fn or "3af23cpu" in fn) == []
