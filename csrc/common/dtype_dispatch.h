// The one switch over af2::DType (common/dtype.h): runs a generic callable with the storage
// type of a dtype, so that each kernel file writes its entry points once for all four types.
//
//   dispatch_dtype(dtype, [&](auto t) { run<decltype(t)>(...); });             // void
//   return dispatch_dtype(dtype, cudaErrorInvalidValue, [&](auto t) { ... });  // with a result
//
// fn receives a value-initialised T (float, fp16_t, bf16_t or double; CUDA code maps it with
// DeviceType, common/cuda_types.cuh). Every DType has a case; `otherwise` is what a value
// outside the enum (never made by bindings/dtype.h) returns. AF2_FOR_EACH_DTYPE(X) expands
// X(T) for the same four types (explicit instantiations). Usable from host and device code.
#pragma once

#include "common/dtype.h"

#if defined(__CUDACC__)
#define AF2_HOST_DEVICE __host__ __device__
#else
#define AF2_HOST_DEVICE
#endif

#define AF2_FOR_EACH_DTYPE(X) X(float) X(fp16_t) X(bf16_t) X(double)

namespace af2 {
AF2_ISA_BEGIN

template <typename R, typename Fn>
AF2_HOST_DEVICE inline R dispatch_dtype(DType dtype, R otherwise, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32:
      return static_cast<R>(fn(float{}));
    case DType::kFloat16:
      return static_cast<R>(fn(fp16_t{}));
    case DType::kBFloat16:
      return static_cast<R>(fn(bf16_t{}));
    case DType::kFloat64:
      return static_cast<R>(fn(double{}));
  }
  return otherwise;
}

template <typename Fn>
AF2_HOST_DEVICE inline void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32:
      fn(float{});
      return;
    case DType::kFloat16:
      fn(fp16_t{});
      return;
    case DType::kBFloat16:
      fn(bf16_t{});
      return;
    case DType::kFloat64:
      fn(double{});
      return;
  }
}

AF2_ISA_END
}  // namespace af2
