"""af2.build_info(), `python -m af2 info`, and the torch-version guard on import."""
from __future__ import annotations

import json
import subprocess
import sys

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
    assert info["openmp"].isdigit()  # built with OpenMP
    assert info["vector_isa"]


def test_cli_info_prints_build_info():
    out = subprocess.run([sys.executable, "-m", "af2", "info", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(af2.build_info()))
    text = subprocess.run([sys.executable, "-m", "af2", "info"], capture_output=True, text=True, check=True).stdout
    assert "torch_version" in text and "vector_isa" in text


def test_import_against_other_torch_fails_clearly():
    code = "import torch; torch.__version__ = '0.0.1+other'; import af2"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"af2 was built against torch {torch.__version__} but torch 0.0.1+other is installed" in proc.stderr
    assert "undefined symbol" not in proc.stderr
