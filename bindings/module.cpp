// The pybind11 module af2._C. Loading it runs the TORCH_LIBRARY registrations of the other
// binding files (same shared object); it exports facts about how this build was made.
#include <dlfcn.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <exception>
#include <string>

#include "cpu/dispatch.h"
#include "cpu/entry_points.h"

#ifndef AF2_VERSION
#error "AF2_VERSION must be defined by the build"
#endif
#ifndef AF2_TORCH_VERSION
#error "AF2_TORCH_VERSION must be defined by the build"
#endif

namespace py = pybind11;

namespace {

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

// How this module reaches libstdc++: "shared" (the process's libstdc++.so, torch's too) or
// "static" (a private copy linked into _C). A private copy's iostreams are never initialised, so
// the first error message an op formats (c10::str) crashes the process: seen on a GPU image
// whose g++ (/opt/gcc, 13.3) linked libstdc++ statically. af2/_extension.py refuses to load such
// a build. Where the code that calls std::terminate lands tells which copy this module uses.
std::string libstdcxx_linkage() {
  Dl_info lib{}, self{};
  if (dladdr(reinterpret_cast<void*>(&std::terminate), &lib) == 0 ||
      dladdr(reinterpret_cast<void*>(&libstdcxx_linkage), &self) == 0 || lib.dli_fname == nullptr ||
      self.dli_fname == nullptr)
    return "unknown";
  return std::strcmp(lib.dli_fname, self.dli_fname) == 0 ? "static" : "shared";
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "af2 compiled core: registers the torch.ops.af2 operators";
  py::dict info;
  info["version"] = AF2_VERSION;
  info["torch_version"] = AF2_TORCH_VERSION;
#ifdef AF2_WITH_CUDA
  info["cuda"] = true;
  info["cuda_archs"] = AF2_CUDA_ARCHS;
  info["cuda_version"] = AF2_CUDA_VERSION;
#else
  info["cuda"] = false;
  info["cuda_archs"] = "";
  info["cuda_version"] = "";
#endif
  info["compiler"] = compiler();
#ifdef _OPENMP
  info["openmp"] = std::to_string(_OPENMP);
#else
  info["openmp"] = "";
#endif
  info["libstdcxx"] = libstdcxx_linkage();
#ifdef _GLIBCXX_USE_CXX11_ABI
  info["cxx11_abi"] = static_cast<bool>(_GLIBCXX_USE_CXX11_ABI);  // setup.py passes torch's
#else
  info["cxx11_abi"] = py::none();  // not libstdc++
#endif
  info["cpu_ops"] = std::vector<std::string>{AF2_CPU_OPS};
  m.attr("_build_info") = info;

  // The CPU kernel variant (csrc/cpu/dispatch.h); af2.build_info() reports these.
  m.def("_cpu_isa", &af2::cpu::active_variant,
        "The CPU kernel variant in use (RuntimeError: AF2_CPU_ISA unusable, or no variant runs "
        "here)");
  m.def("_set_cpu_isa", &af2::cpu::force_variant, py::arg("name"),
        "Use CPU kernel variant `name` from now on ('' = the automatic choice); ValueError if it "
        "cannot run");
  m.def("_cpu_isas", &af2::cpu::compiled_variants,
        "The CPU kernel variants compiled in, lowest first");
  m.def("_cpu_isas_runnable", &af2::cpu::runnable_variants,
        "The compiled variants this CPU/OS can run");
  m.def("_cpu_isa_vector_isa", &af2::cpu::variant_vector_isa, py::arg("name"),
        "What a variant was compiled for (avx2, avx512, avx512+bf16, ...)");
  m.def("_cpu_isa_float16_native", &af2::cpu::variant_float16_native, py::arg("name"),
        "Whether a variant converts fp16 in hardware");
  m.def("_cpu_features", &af2::cpu::cpu_features,
        "Vector features of the running CPU that the OS enables");
}
