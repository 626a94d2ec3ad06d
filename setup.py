"""Build of af2._C: the torch-free kernels of csrc/ plus the torch glue of bindings/.

The source list is sources.txt (shared with CMakeLists.txt and the tests). Environment:
  AF2_BUILD_CUDA = auto (default) | 0 | 1   compile the CUDA kernels; auto = when torch has CUDA
                                             and a CUDA toolkit (nvcc) is found; 1 insists.
  TORCH_CUDA_ARCH_LIST                      CUDA archs, default "8.0;9.0a" (sm_80, sm_90a).
  AF2_CPU_ARCH = native (default) | none | <gcc -march value>   vector ISA of the CPU kernels.
The CUDA kernels also need the CUTLASS/CuTe headers: pip install --no-deps nvidia-cutlass.
  MAX_JOBS                                  parallel compile jobs (ninja).
Install with the torch already present (no build isolation):
  pip install torch==2.13.0 ninja && pip install --no-build-isolation -e .
"""
import os
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
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  str(Path(os.path.realpath(nvcc)).parent.parent) if nvcc else None, "/usr/local/cuda"]
    for cand in filter(None, candidates):
        if (Path(cand) / "bin" / "nvcc").exists() and (Path(cand) / "include" / "cuda_runtime_api.h").exists():
            return cand
    return None


if os.environ.get("AF2_BUILD_CUDA", "auto").strip() != "0" and find_cuda_home():
    os.environ["CUDA_HOME"] = find_cuda_home()

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - exercised only on a machine without torch
    fail("torch must be installed before building af2, and the build must see it: "
         "pip install torch==2.13.0 ninja && pip install --no-build-isolation .")


def read_sources() -> dict:
    kinds: dict = {"core": [], "cuda": [], "bind": [], "bind_cuda": []}
    for lineno, line in enumerate((ROOT / "sources.txt").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, path = line.split()
        if kind not in kinds:
            fail(f"sources.txt:{lineno}: unknown kind {kind!r}")
        kinds[kind].append(path)
    return kinds


def want_cuda() -> bool:
    mode = os.environ.get("AF2_BUILD_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        fail(f"AF2_BUILD_CUDA must be auto, 0 or 1, got {mode!r}")
    torch_cuda = torch.version.cuda is not None
    have_nvcc = CUDA_HOME is not None and (Path(CUDA_HOME) / "bin" / "nvcc").exists()
    if mode == "1":
        if not torch_cuda:
            fail(f"AF2_BUILD_CUDA=1 but torch {torch.__version__} is a CPU-only build; "
                 "install a CUDA build of torch or use AF2_BUILD_CUDA=auto")
        if not have_nvcc:
            fail("AF2_BUILD_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME to a directory "
                 "with bin/nvcc)")
        return True
    if mode == "0":
        return False
    if not (torch_cuda and have_nvcc):
        why = "torch is a CPU-only build" if not torch_cuda else "no CUDA toolkit (nvcc) was found"
        print(f"af2: building the CPU core only ({why}); set AF2_BUILD_CUDA=1 to insist on CUDA")
        return False
    return True


def cutlass_include() -> str:
    """CUTLASS/CuTe headers from the nvidia-cutlass wheel (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("cutlass_library")
    path = Path(spec.submodule_search_locations[0]) / "source" / "include" if spec else None
    if path is None or not (path / "cute").is_dir():
        fail("the CUDA kernels need the CUTLASS/CuTe headers of the nvidia-cutlass wheel: "
             "pip install --no-deps nvidia-cutlass (or build the CPU core with AF2_BUILD_CUDA=0)")
    return str(path)


def cpu_arch_flags() -> list:
    arch = os.environ.get("AF2_CPU_ARCH", "native").strip()
    return [] if arch in ("", "none") else [f"-march={arch}"]


version = re.search(r'__version__ = "([^"]+)"', (ROOT / "af2" / "_version.py").read_text()).group(1)
torch_version = torch.__version__.split("+")[0]
sources = read_sources()
with_cuda = want_cuda()
if with_cuda:
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0a")
cuda_archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else ""

macros = [("AF2_VERSION", f'"{version}"'), ("AF2_TORCH_VERSION", f'"{torch.__version__}"')]
# The C++ standard is torch's choice (C++17 up to torch 2.13, C++20 from 2.14).
cxx = ["-O3", "-fopenmp", "-fno-math-errno", *cpu_arch_flags()]
include_dirs = [str(ROOT / "csrc"), str(ROOT)]
ext_sources = sources["core"] + sources["bind"]
ext_kwargs = dict(include_dirs=include_dirs, extra_link_args=["-fopenmp"])
if with_cuda:
    macros += [("AF2_WITH_CUDA", None), ("AF2_CUDA_ARCHS", f'"{cuda_archs}"'),
               ("AF2_CUDA_VERSION", f'"{torch.version.cuda}"')]
    ext_sources += sources["cuda"] + sources["bind_cuda"]
    include_dirs.append(cutlass_include())
    nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    extension = CUDAExtension("af2._C", ext_sources, define_macros=macros,
                              extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **ext_kwargs)
else:
    extension = CppExtension("af2._C", ext_sources, define_macros=macros,
                             extra_compile_args={"cxx": cxx}, **ext_kwargs)

# Facts the Python side checks before loading _C (a torch mismatch would otherwise surface
# as an undefined-symbol error).
(ROOT / "af2" / "_build_meta.py").write_text(
    "# Written by setup.py at build time; do not edit.\n"
    f"TORCH_VERSION = {torch.__version__!r}\n"
    f"CUDA = {with_cuda!r}\n"
    f"CUDA_ARCHS = {cuda_archs!r}\n"
)

setup(
    version=version,
    packages=find_packages(include=["af2", "af2.*"]),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
