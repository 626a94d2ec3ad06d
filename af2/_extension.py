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
    check_libstdcxx(_C._build_info.get("libstdcxx", "shared"))
    return _C


def check_libstdcxx(linkage: str) -> None:
    """Raise ImportError for a core with its own static copy of libstdc++ (linkage "static").

    Such a copy's iostreams are never initialised: the first error message an op formats would
    crash the process (seen with a GPU image's /opt/gcc g++ 13.3, which links libstdc++
    statically). "shared" and "unknown" (not libstdc++, or not determinable) pass.
    """
    if linkage != "static":
        return
    raise ImportError(
        "af2's compiled core carries its own static copy of libstdc++ (its C++ compiler linked it "
        "statically), so an op's error message would crash the process instead of raising. Rebuild "
        "it with a compiler that links libstdc++ as a shared library, e.g. the system one: "
        f"CC=/usr/bin/gcc CXX=/usr/bin/g++ {_REINSTALL}")
