"""Build of af2._C: the torch-free kernels of csrc/ plus the torch glue of bindings/.

The source list is sources.txt (shared with CMakeLists.txt and the tests). Environment:
  AF2_BUILD_CUDA = auto (default) | 0 | 1   compile the CUDA kernels; auto = when torch has CUDA
                                             and a CUDA toolkit (nvcc) of the same CUDA major
                                             version is found, else the CPU core with a printed
                                             warning (af2.build_info()["cuda_note"] says why);
                                             1 insists (fails with a clear message instead).
  TORCH_CUDA_ARCH_LIST                      CUDA archs, default "8.0;9.0a" (sm_80, sm_90a).
  AF2_CPU_ARCH = dispatch | native | none | <gcc -march value>   instruction set of the CPU kernels:
                                             dispatch (the default on x86-64) compiles them once per
                                             variant (avx2 = x86-64-v3, avx512 = x86-64-v4) into one
                                             library that picks one at run time (a wheel runs on any
                                             AVX2 machine); native (the default elsewhere) or a -march
                                             value compiles one variant for that target; none: the
                                             compiler's default target (docs/cpu_dispatch.md).
  AF2_CUTLASS_INCLUDE=<dir with cute/>      the CUTLASS/CuTe headers the CUDA kernels need (as CMake's
  CUTLASS_PATH=<CUTLASS checkout>            -DAF2_CUTLASS_INCLUDE; CUTLASS_PATH: its include/ is used);
                                             default: the nvidia-cutlass wheel's headers
                                             (pip install --no-deps nvidia-cutlass). A CPU-only build
                                             never needs them; AF2_BUILD_CUDA=auto without them builds
                                             the CPU core with a warning, =1 fails.
  MAX_JOBS                                  parallel compile jobs (ninja).
Install with the torch already present (no build isolation):
  pip install torch==2.13.0 ninja && pip install --no-build-isolation -e .
Distributions (docs/packaging.md): python -m build --no-isolation  (an sdist and a wheel in dist/).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def fail(msg: str) -> None:
    sys.exit(f"af2 build error: {msg}")


def find_cuda_home():
    """A CUDA toolkit directory with bin/nvcc and the runtime headers, or None.

    torch guesses CUDA_HOME from the nvcc on PATH; a wrapper script such as /usr/local/bin/nvcc
    makes that guess /usr/local, which has no CUDA headers. Check each candidate instead.
    """
    import shutil

    nvcc = shutil.which("nvcc")
    candidates = [
        os.environ.get("CUDA_HOME"),
        os.environ.get("CUDA_PATH"),
        str(Path(os.path.realpath(nvcc)).parent.parent) if nvcc else None,
        "/usr/local/cuda",
    ]
    for cand in filter(None, candidates):
        if (Path(cand) / "bin" / "nvcc").exists() and (Path(cand) / "include" / "cuda_runtime_api.h").exists():
            return cand
    return None


def read_sources() -> dict:
    kinds: dict = {"core": [], "cpu": [], "cuda": [], "bind": [], "bind_cuda": []}
    for lineno, line in enumerate((ROOT / "sources.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, path = line.split()
        if kind not in kinds:
            fail(f"sources.txt:{lineno}: unknown kind {kind!r}")
        kinds[kind].append(path)
    return kinds


#: What a wheel installs: af2 and the trainer (training/ stays at the top of the repository).
PACKAGES = ["af2", "af2.*", "training", "training.*"]

MODES = ("auto", "0", "1")


def build_mode() -> str:
    """AF2_BUILD_CUDA, validated: auto (default), 0 or 1."""
    raw = os.environ.get("AF2_BUILD_CUDA", "auto")
    mode = raw.strip().lower()
    if mode not in MODES:
        fail(f"AF2_BUILD_CUDA must be auto, 0 or 1, got {raw!r}")
    return mode


def nvcc_release(cuda_home) -> str | None:
    """The CUDA release of cuda_home's nvcc ("13.0"), or None if it cannot be read."""
    import subprocess

    if not cuda_home:
        return None
    try:
        out = subprocess.run(
            [str(Path(cuda_home) / "bin" / "nvcc"), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def cuda_plan(mode: str, torch_version: str, torch_cuda, cuda_home, nvcc_version) -> tuple:
    """Whether to compile the CUDA kernels: (True, "") or (False, why not). Pure (tests call it).

    mode: AF2_BUILD_CUDA (auto | 0 | 1); torch_cuda: torch.version.cuda (None for a CPU torch);
    cuda_home: the toolkit directory found (None: no nvcc); nvcc_version: its release ("13.0") or
    None if unreadable. "1" fails with a clear message where CUDA cannot be built; "auto" then
    builds the CPU core and prints why, also when nvcc's CUDA major version differs from torch's
    (torch's extension builder refuses that pair).
    """
    if mode not in MODES:
        fail(f"AF2_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
    if mode == "0":
        return False, "AF2_BUILD_CUDA=0"
    major = lambda v: v.split(".")[0]
    mismatch = (
        torch_cuda is not None
        and cuda_home is not None
        and nvcc_version is not None
        and major(nvcc_version) != major(torch_cuda)
    )
    mismatch_msg = (
        f"nvcc in {cuda_home} is CUDA {nvcc_version} but torch {torch_version} was built with "
        f"CUDA {torch_cuda}; the major versions must match (set CUDA_HOME to a CUDA "
        f"{torch_cuda and major(torch_cuda)}.x toolkit)"
    )
    if mode == "1":
        if torch_cuda is None:
            fail(
                f"AF2_BUILD_CUDA=1 but torch {torch_version} is a CPU-only build; "
                "install a CUDA build of torch or use AF2_BUILD_CUDA=auto"
            )
        if cuda_home is None:
            fail("AF2_BUILD_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME to a directory with bin/nvcc)")
        if mismatch:
            fail(f"AF2_BUILD_CUDA=1 but {mismatch_msg}")
        return True, ""
    if torch_cuda is None:
        return False, f"torch {torch_version} is a CPU-only build"
    if cuda_home is None:
        return False, "no CUDA toolkit (nvcc) was found"
    if mismatch:
        return False, mismatch_msg
    return True, ""


def want_cuda(mode: str, cuda_home) -> tuple:
    """cuda_plan for this environment; in auto mode prints why the CUDA kernels are left out."""
    import torch

    with_cuda, note = cuda_plan(
        mode, torch.__version__, torch.version.cuda, cuda_home, nvcc_release(cuda_home) if torch.version.cuda else None
    )
    if mode == "auto" and not with_cuda:
        print(
            f"af2 build warning: building the CPU core only: {note}; set AF2_BUILD_CUDA=1 to insist on CUDA",
            file=sys.stderr,
        )
    return with_cuda, note


def cutlass_include(environ=os.environ) -> str | None:
    """The CUTLASS/CuTe include directory (it holds cute/), or None where none is found.

    AF2_CUTLASS_INCLUDE (the directory itself, as CMake's -DAF2_CUTLASS_INCLUDE), else
    CUTLASS_PATH (a CUTLASS checkout: its include/, or the directory itself if it holds cute/),
    else the nvidia-cutlass wheel's headers (found without importing it). A variable that is set
    but holds no cute/ fails, naming it.
    """
    import importlib.util

    for var in ("AF2_CUTLASS_INCLUDE", "CUTLASS_PATH"):
        raw = environ.get(var, "").strip()
        if not raw:
            continue
        tries = [Path(raw)] if var == "AF2_CUTLASS_INCLUDE" else [Path(raw) / "include", Path(raw)]
        for path in tries:
            if (path / "cute").is_dir():
                return str(path)
        fail(f"{var}={raw!r} holds no CuTe headers (looked for {' and '.join(str(p / 'cute') for p in tries)})")
    spec = importlib.util.find_spec("cutlass_library")
    path = Path(spec.submodule_search_locations[0]) / "source" / "include" if spec else None
    return str(path) if path is not None and (path / "cute").is_dir() else None


NO_CUTLASS = (
    "the CUDA kernels need the CUTLASS/CuTe headers: pip install --no-deps nvidia-cutlass, or set "
    "AF2_CUTLASS_INCLUDE (or CUTLASS_PATH) to them"
)


def cutlass_plan(mode: str, include) -> tuple:
    """After cuda_plan chose CUDA: (True, "") with the headers found (include), else (False, why)
    in auto mode; mode "1" fails. Pure (tests call it)."""
    if include is not None:
        return True, ""
    if mode == "1":
        fail(f"AF2_BUILD_CUDA=1 but {NO_CUTLASS} (or build the CPU core with AF2_BUILD_CUDA=0)")
    return False, f"no CUTLASS/CuTe headers were found ({NO_CUTLASS})"


# The CPU variants of AF2_CPU_ARCH=dispatch, lowest first (the link order: where two variants
# share an inline function of the standard library, the linker keeps the lowest one's copy).
DISPATCH_VARIANTS = (("avx2", ["-march=x86-64-v3"]), ("avx512", ["-march=x86-64-v4"]))


def cpu_variants(arch, machine: str) -> list:
    """The CPU kernel variants to compile: [(name, compiler flags)], lowest first. Pure.

    arch: AF2_CPU_ARCH (None: unset); machine: platform.machine(). The names are those of
    csrc/cpu/dispatch.cpp; each variant's sources are compiled with -DAF2_ISA=<name>.
    """
    x86_64 = machine.lower() in ("x86_64", "amd64")
    arch = (arch if arch is not None else ("dispatch" if x86_64 else "native")).strip()
    if arch == "dispatch":
        if not x86_64:
            fail(
                f"AF2_CPU_ARCH=dispatch needs an x86-64 machine, this one is {machine!r} "
                "(use AF2_CPU_ARCH=native or none)"
            )
        return [(name, list(flags)) for name, flags in DISPATCH_VARIANTS]
    if arch == "native":
        return [("native", ["-march=native"])]
    if arch in ("", "none"):
        return [("generic", [])]
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", arch):
        fail(f"AF2_CPU_ARCH must be dispatch, native, none or a -march value, got {arch!r}")
    return [("custom", [f"-march={arch}"])]


def variant_symbol_leaks(nm_lines, variant: str) -> list:
    """Weak symbols of af2 code outside the namespace af2::<variant> (common/isa.h) among a variant
    object's `nm -P --defined-only` lines: the linker would merge them across variants (an
    AVX-512 copy could end up in AVX2 code). The standard library's inline functions are merged
    too but harmlessly (the variants are linked lowest first, whose copy is kept). Pure."""
    af2_code = re.compile(r"_Z(?:GV|TH|TW)?Z?N[rVK]*3af2")
    ours = re.compile(af2_code.pattern + str(len(variant)) + re.escape(variant))
    return [
        parts[0]
        for parts in (line.split() for line in nm_lines)
        if len(parts) >= 2 and parts[1] in ("W", "V", "u") and af2_code.match(parts[0]) and not ours.match(parts[0])
    ]


def check_variant_objects(objects, variant: str) -> None:
    """Fails the build where a variant's object defines mergeable af2 code outside its namespace."""
    import shutil
    import subprocess

    nm = shutil.which("nm")
    if nm is None:
        print("af2 build warning: nm not found, the CPU variant objects are not checked", file=sys.stderr)
        return
    for obj in objects:
        lines = subprocess.run(
            [nm, "-P", "--defined-only", obj], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        leaks = variant_symbol_leaks(lines, variant)
        if leaks:
            fail(
                f"{obj} (CPU variant {variant}) defines af2 code outside namespace af2::{variant}, which "
                f"the linker would share across variants: {leaks[:5]}; wrap it in AF2_ISA_BEGIN/END "
                "(csrc/common/isa.h)"
            )


def with_cpu_variants(build_ext_class, variants, cpu_sources):
    """build_ext that compiles cpu_sources once per CPU variant ([(name, flags)], lowest first) with
    that variant's flags and -DAF2_ISA=<name>, and links the objects after the extension's own,
    in variant order (setuptools compiles every source of an extension with the same flags)."""

    class BuildWithCpuVariants(build_ext_class):
        def build_extension(self, ext):
            objects = []
            for name, flags in variants:
                objs = self.compiler.compile(
                    cpu_sources,
                    output_dir=os.path.join(self.build_temp, f"cpu-{name}"),
                    macros=[*ext.define_macros, ("AF2_ISA", name)],
                    include_dirs=ext.include_dirs,
                    extra_postargs={"cxx": [*ext.extra_compile_args["cxx"], *flags]},
                    depends=ext.depends,
                )
                check_variant_objects(objs, name)
                objects += objs
            ext.extra_objects = [*objects, *(ext.extra_objects or [])]
            ext.depends = [*ext.depends, *objects]  # a recompiled variant relinks the library
            super().build_extension(ext)

    return BuildWithCpuVariants


def torch_variant(torch) -> str:
    """The build of torch ("cpu", "cu130", "rocm6.2") as af2/_extension.py names it when it checks
    that the core may load (that file is read by path: af2 is not importable while it builds)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("af2_extension_at_build", ROOT / "af2" / "_extension.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.torch_variant(torch.version.cuda, getattr(torch.version, "hip", None))


BUILD_COMMANDS = {"build", "build_ext", "build_py", "bdist_wheel", "bdist", "install", "develop", "editable_wheel"}


def builds(args: list) -> bool:
    """Whether setup.py's command line (``args``) compiles or installs, rather than only making an
    sdist or metadata (sdist, egg_info, dist_info)."""
    return bool(BUILD_COMMANDS & set(args))


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:  # pragma: no cover - exercised only on a machine without torch
        fail(
            f"torch must be installed before building af2, and the build must see it ({e}): "
            "pip install torch==2.13.0 ninja && pip install --no-build-isolation ."
        )


def main() -> None:
    mode = build_mode()
    cuda_home = find_cuda_home() if mode != "0" else None
    if cuda_home:  # before torch.utils.cpp_extension reads it
        os.environ["CUDA_HOME"] = cuda_home
    import_torch()
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "af2" / "_version.py").read_text()).group(1)
    sources = read_sources()
    with_cuda, cuda_note = want_cuda(mode, cuda_home)
    cutlass = cutlass_include() if with_cuda else None
    if with_cuda:
        with_cuda, cuda_note = cutlass_plan(mode, cutlass)
        if not with_cuda:
            print(f"af2 build warning: building the CPU core only: {cuda_note}", file=sys.stderr)
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0a")
    cuda_archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else ""

    macros = [("AF2_VERSION", f'"{version}"'), ("AF2_TORCH_VERSION", f'"{torch.__version__}"')]
    # The C++ standard is torch's choice (C++17 up to torch 2.13, C++20 from 2.14).
    # libstdc++'s string ABI must be torch's (else the core cannot load: undefined symbols).
    # Recent torch (seen: 2.11, 2.13) no longer passes it; a compiler whose default differs needs it.
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    cxx = ["-O3", "-fopenmp", "-fno-math-errno", abi]
    cpu_arch = os.environ.get("AF2_CPU_ARCH")
    variants = cpu_variants(cpu_arch, platform.machine())
    macros += [(f"AF2_CPU_VARIANT_{name.upper()}", None) for name, _ in variants]
    include_dirs = [str(ROOT / "csrc"), str(ROOT)]
    ext_sources = sources["core"] + sources["bind"]
    ext_kwargs = dict(include_dirs=include_dirs, extra_link_args=["-fopenmp"])
    if with_cuda:
        macros += [
            ("AF2_WITH_CUDA", None),
            ("AF2_CUDA_ARCHS", f'"{cuda_archs}"'),
            ("AF2_CUDA_VERSION", f'"{torch.version.cuda}"'),
        ]
        ext_sources += sources["cuda"] + sources["bind_cuda"]
        include_dirs.append(cutlass)
        nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr", abi]
        extension = CUDAExtension(
            "af2._C", ext_sources, define_macros=macros, extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **ext_kwargs
        )
    else:
        extension = CppExtension(
            "af2._C", ext_sources, define_macros=macros, extra_compile_args={"cxx": cxx}, **ext_kwargs
        )

    # Facts the Python side checks before loading _C (a torch mismatch would otherwise surface
    # as an undefined-symbol error); CUDA_NOTE says why the CUDA kernels were left out. Not for
    # an sdist or metadata alone: they build nothing (and MANIFEST.in leaves the file out).
    if builds(sys.argv[1:]):
        (ROOT / "af2" / "_build_meta.py").write_text(
            "# Written by setup.py at build time; do not edit.\n"
            f"TORCH_VERSION = {torch.__version__!r}\n"
            f"TORCH_VARIANT = {torch_variant(torch)!r}\n"
            f"CUDA = {with_cuda!r}\n"
            f"CUDA_ARCHS = {cuda_archs!r}\n"
            f"CUDA_NOTE = {cuda_note!r}\n"
            f"CPU_VARIANTS = {[name for name, _ in variants]!r}\n"
        )

    setup(
        version=version,
        packages=find_packages(include=PACKAGES),
        ext_modules=[extension],
        cmdclass={
            "build_ext": with_cpu_variants(BuildExtension.with_options(use_ninja=True), variants, sources["cpu"])
        },
    )


# setuptools' build backend and `python setup.py ...` both run this file as __main__; the tests
# import it under another name to check cuda_plan without building.
if __name__ == "__main__":
    main()
