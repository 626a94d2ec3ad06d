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
    code = ("import torch, af2\nfrom af2.ops import rope_windowed\n"
            "try:\n    rope_windowed(torch.randn(2, 8, 2, 8), window_size=3)\n"
            "except ValueError as e:\n    print('caught', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "caught rope_windowed: S must be a multiple of window_size" in proc.stdout
