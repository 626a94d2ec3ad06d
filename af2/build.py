"""Facts about this build of af2 and the runtime it is loaded into."""
from __future__ import annotations

import torch


def build_info() -> dict:
    """How af2's compiled core was built, and what the runtime offers.

    Loads the compiled core (ImportError with the cause and the remedy where it cannot load).
    Keys: version, torch_version (built against), torch_variant (cpu, cu130, rocm6.2: the build of
    torch built against), torch_runtime (installed now; the core loads when its public version
    and variant are those built against: af2/_extension.py), cuda (CUDA kernels compiled),
    cuda_archs, cuda_version (toolkit of the build's torch), cuda_available (a device is usable
    now), cuda_note (why the CUDA kernels are absent: AF2_BUILD_CUDA=0, a CPU-only torch, no nvcc,
    or an nvcc whose CUDA major version differs from torch's; '' when they are compiled),
    compiler, cxx11_abi (libstdc++'s _GLIBCXX_USE_CXX11_ABI of the build, torch's; None when not
    recorded), libstdcxx ("shared"; "static": a private copy, refused on import; "unknown"),
    openmp (the _OPENMP date, '' without OpenMP), num_threads, vector_isa, float16_native (fp16
    conversions in hardware on the CPU path).
    """
    from af2 import _build_meta, _extension

    info = dict(_extension.load()._build_info)
    info["torch_variant"] = _extension.built_variant(_build_meta)
    info["torch_runtime"] = torch.__version__
    info["cuda_available"] = bool(info["cuda"]) and torch.cuda.is_available()
    info["num_threads"] = torch.get_num_threads()
    info["cuda_note"] = getattr(_build_meta, "CUDA_NOTE", "")  # absent in builds before the note
    info.setdefault("cxx11_abi", None)  # absent in builds before it was recorded
    info.setdefault("libstdcxx", "unknown")
    order = ["version", "torch_version", "torch_variant", "torch_runtime", "cuda", "cuda_archs", "cuda_version",
             "cuda_available", "cuda_note", "compiler", "cxx11_abi", "libstdcxx", "openmp", "num_threads",
             "vector_isa", "float16_native"]
    return {k: info[k] for k in order}
