// The pybind11 module af2._C. Loading it runs the TORCH_LIBRARY registrations of the other
// binding files (same shared object); it exports facts about how this build was made.
#include <dlfcn.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <exception>
#include <string>

#include "common/dtype.h"

#ifndef AF2_VERSION
#error "AF2_VERSION must be defined by the build"
#endif
#ifndef AF2_TORCH_VERSION
#error "AF2_TORCH_VERSION must be defined by the build"
#endif

namespace py = pybind11;

namespace {

std::string vector_isa() {
#if defined(__AVX512F__)
  std::string isa = "avx512";
#if defined(__AVX512BF16__)
  isa += "+bf16";
#endif
  return isa;
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__x86_64__)
  return "sse2";
#elif defined(__ARM_FEATURE_SVE)
  return "sve";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

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
  info["vector_isa"] = vector_isa();
  info["libstdcxx"] = libstdcxx_linkage();
#ifdef _GLIBCXX_USE_CXX11_ABI
  info["cxx11_abi"] = static_cast<bool>(_GLIBCXX_USE_CXX11_ABI);  // setup.py passes torch's
#else
  info["cxx11_abi"] = py::none();  // not libstdc++
#endif
  info["float16_native"] = static_cast<bool>(AF2_HAVE_FLOAT16);
  m.attr("_build_info") = info;
}
