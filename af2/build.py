"""Facts about this build of af2 and the runtime it is loaded into."""

from __future__ import annotations

import contextlib

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
    openmp (the _OPENMP date, '' without OpenMP), num_threads; the CPU kernels
    (docs/cpu_dispatch.md): cpu_isa (the variant in use now: avx2 / avx512 in a dispatching
    build, native / custom / generic in an AF2_CPU_ARCH build; '' when none can be used, see
    cpu_isa_error), cpu_isa_ops (the variant each op's CPU kernels use), cpu_isas (the variants
    compiled in, lowest first), cpu_isas_runnable (those this CPU/OS can run), cpu_isa_error (why
    cpu_isa is '': a bad AF2_CPU_ISA, or a CPU below every variant), cpu_features (the running
    CPU's vector features that the OS enables), vector_isa (what cpu_isa was compiled for: avx2,
    avx512, avx512+bf16, ...), float16_native (fp16 conversions in hardware on that variant).
    """
    from af2 import _build_meta, _extension

    core = _extension.load()
    info = dict(core._build_info)
    info["torch_variant"] = _extension.built_variant(_build_meta)
    info["torch_runtime"] = torch.__version__
    info["cuda_available"] = bool(info["cuda"]) and torch.cuda.is_available()
    info["num_threads"] = torch.get_num_threads()
    info["cuda_note"] = getattr(_build_meta, "CUDA_NOTE", "")  # absent in builds before the note
    info.setdefault("cxx11_abi", None)  # absent in builds before it was recorded
    info.setdefault("libstdcxx", "unknown")
    info.update(cpu_isa_info(core))
    order = [
        "version",
        "torch_version",
        "torch_variant",
        "torch_runtime",
        "cuda",
        "cuda_archs",
        "cuda_version",
        "cuda_available",
        "cuda_note",
        "compiler",
        "cxx11_abi",
        "libstdcxx",
        "openmp",
        "num_threads",
        "cpu_isa",
        "cpu_isa_ops",
        "cpu_isas",
        "cpu_isas_runnable",
        "cpu_isa_error",
        "cpu_features",
        "vector_isa",
        "float16_native",
    ]
    return {k: info[k] for k in order}


def cpu_isa_info(core) -> dict:
    """The CPU kernel variant keys of build_info(), read from the compiled core `core`."""
    try:
        isa, error = core._cpu_isa(), ""
    except RuntimeError as e:  # AF2_CPU_ISA names a variant that cannot be used, or none can run here
        isa, error = "", str(e)
    return {
        "cpu_isa": isa,
        "cpu_isa_ops": {op: isa for op in core._build_info["cpu_ops"]},
        "cpu_isas": list(core._cpu_isas()),
        "cpu_isas_runnable": list(core._cpu_isas_runnable()),
        "cpu_isa_error": error,
        "cpu_features": core._cpu_features(),
        "vector_isa": core._cpu_isa_vector_isa(isa) if isa else "",
        "float16_native": bool(core._cpu_isa_float16_native(isa)) if isa else False,
    }


@contextlib.contextmanager
def cpu_isa(name: str):
    """Run the CPU kernels on variant `name` (one of build_info()["cpu_isas_runnable"]) inside the
    block, then return to the previous choice. For tests and side-by-side measurements; the
    environment variable AF2_CPU_ISA does the same for a whole process.

    >>> with af2.build.cpu_isa("avx2"):
    ...     out = af2.ops.media_cross_attention(q, k, v, key_start, key_end)
    """
    from af2 import _extension

    _C = _extension.load()
    try:
        previous = _C._cpu_isa()
    except RuntimeError:
        previous = ""
    _C._set_cpu_isa(name)  # ValueError naming the variants there are
    try:
        yield
    finally:
        _C._set_cpu_isa(previous)
