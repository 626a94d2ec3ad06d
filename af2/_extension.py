"""Loads the compiled core af2._C, after checking that it was built against this torch."""
from __future__ import annotations

import torch

_REINSTALL = "pip install --no-build-isolation --force-reinstall --no-deps -e <af2 source dir>"


def load():
    """Import af2._C (which registers torch.ops.af2.*) and return it.

    Raises ImportError with the cause when the core is missing or was built for another torch.
    """
    try:
        from af2 import _build_meta
    except ImportError as e:
        raise ImportError(
            "af2's compiled core has not been built. Install af2 from source with the torch you use: "
            f"{_REINSTALL}") from e
    if _build_meta.TORCH_VERSION != torch.__version__:
        raise ImportError(
            f"af2 was built against torch {_build_meta.TORCH_VERSION} but torch {torch.__version__} is "
            f"installed; its compiled core cannot load. Rebuild af2 against this torch: {_REINSTALL}")
    try:
        from af2 import _C
    except ImportError as e:
        raise ImportError(
            f"af2's compiled core failed to load ({e}). It was built against torch "
            f"{_build_meta.TORCH_VERSION}; rebuild it: {_REINSTALL}") from e
    check_string_abi(_C._build_info.get("cxx11_abi"), bool(torch._C._GLIBCXX_USE_CXX11_ABI))
    return _C


def check_string_abi(core_abi, torch_abi: bool) -> None:
    """Raise ImportError when the core's libstdc++ string ABI differs from torch's.

    core_abi: the _GLIBCXX_USE_CXX11_ABI the core was compiled with (None: not libstdc++, or a
    build from before this was recorded). Under different ABIs every error an op raises (a
    c10::Error holds std::strings) crashes the process instead of reaching Python.
    """
    if core_abi is None or bool(core_abi) == torch_abi:
        return
    name = lambda abi: "the C++11 (new)" if abi else "the pre-C++11 (old)"
    raise ImportError(
        f"af2's compiled core was built with {name(core_abi)} libstdc++ string ABI but torch uses "
        f"{name(torch_abi)} one (_GLIBCXX_USE_CXX11_ABI {int(bool(core_abi))} vs {int(torch_abi)}); an op's "
        f"error would crash the process. Rebuild af2 (its setup.py passes torch's ABI): {_REINSTALL}")
