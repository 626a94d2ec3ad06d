"""Loads the compiled core af2._C, after checking that it was built for the torch installed.

Only af2.ops imports this (and af2.build_info() when called): ``import af2``, af2.data,
af2.llm and af2.eval never load the core, so they work where it cannot load.

Which torch a core loads into (docs/packaging.md): a C++ extension links against libtorch's
C++ symbols, which change between torch releases, and against the CUDA runtime of torch's
build. So the torch at run time must have the same public version as the one built against
(``2.13.0`` == ``2.13.0``; a nightly or source build ``2.14.0.dev20260101`` only itself) and
the same build variant: CPU, CUDA x.y or ROCm x.y. The variant is read from
``torch.version.cuda`` / ``torch.version.hip``, not from the version's ``+local`` suffix, because
the same wheel is ``2.13.0`` on PyPI and ``2.13.0+cu130`` on torch's own index; a local suffix
that is not a variant (``+git1a2b3c``, a source build) must match exactly.
"""

from __future__ import annotations

import re

import torch

_REBUILD = (
    "pip install --no-build-isolation --force-reinstall --no-deps <af2 sdist, or the source "
    "directory (-e for a checkout)>"
)
_PURE = "af2.data, af2.llm, af2.eval and af2.reference do not need it and still work"
_VARIANT_LABEL = re.compile(r"^(cpu|cu\d+|rocm[\d.]+)$")


def torch_variant(cuda: str | None, hip: str | None = None) -> str:
    """'cpu', 'cu130' (torch.version.cuda '13.0') or 'rocm6.2' (torch.version.hip '6.2.41133')."""
    if hip:
        return "rocm" + ".".join(hip.split(".")[:2])
    if cuda:
        return "cu" + "".join(cuda.split(".")[:2])
    return "cpu"


def torch_mismatch(built: str, built_var: str, runtime: str, runtime_var: str) -> str | None:
    """Why a core built against torch ``built`` cannot load into torch ``runtime``; None if it can.

    built / runtime: ``torch.__version__`` strings ("2.13.0+cpu"); *_var: :func:`torch_variant`
    of each. Pure (the tests call it over version strings, without rebuilding).
    """
    b_public, _, b_local = built.partition("+")
    r_public, _, r_local = runtime.partition("+")
    if b_public != r_public:
        return f"torch {r_public} is not the release it was built against ({b_public})"
    if built_var != runtime_var:
        return f"the installed torch is a {runtime_var} build, the core was built for {built_var}"
    b_label = "" if _VARIANT_LABEL.match(b_local) else b_local
    r_label = "" if _VARIANT_LABEL.match(r_local) else r_local
    if b_label != r_label:
        return f"torch {runtime} is another build of {r_public} than {built} (local label {r_local or 'none'})"
    return None


def runtime_variant() -> str:
    """:func:`torch_variant` of the torch imported."""
    return torch_variant(torch.version.cuda, getattr(torch.version, "hip", None))


def built_variant(meta) -> str:
    """The variant of the torch the core was built against (af2/_build_meta.py's TORCH_VARIANT)."""
    variant = getattr(meta, "TORCH_VARIANT", None)
    if variant:
        return variant
    local = meta.TORCH_VERSION.partition("+")[2]  # a core built before the variant was recorded
    return local if _VARIANT_LABEL.match(local) else runtime_variant()


def load():
    """Import af2._C (which registers torch.ops.af2.*) and return it.

    Raises ImportError naming the cause and the remedy when the core is missing, was built for
    another torch, or cannot be loaded.
    """
    try:
        from af2 import _build_meta
    except ImportError as e:
        raise ImportError(
            "af2's compiled core (af2._C) has not been built: this af2 is a source tree without a build. "
            f"Build it with the torch you use: {_REBUILD}. ({_PURE}.)"
        ) from e
    why = torch_mismatch(_build_meta.TORCH_VERSION, built_variant(_build_meta), torch.__version__, runtime_variant())
    if why:
        raise ImportError(
            f"af2 was built against torch {_build_meta.TORCH_VERSION} but torch {torch.__version__} is installed "
            f"({why}); its compiled core cannot load. Rebuild af2 against this torch: {_REBUILD}. ({_PURE}.)"
        )
    try:
        from af2 import _C
    except ImportError as e:
        raise ImportError(
            f"af2's compiled core failed to load ({e}). It was built against torch {_build_meta.TORCH_VERSION}; "
            f"rebuild it: {_REBUILD}. ({_PURE}.)"
        ) from e
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
        f"CC=/usr/bin/gcc CXX=/usr/bin/g++ {_REBUILD}"
    )
