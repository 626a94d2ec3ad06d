// Maps the torch-free host scalar types (common/dtype.h) to CUDA's device types, and gives
// float conversions for device code. Included only by .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "common/dtype.h"

namespace af2 {

template <typename T>
struct DeviceType {
  using type = T;
};
template <>
struct DeviceType<fp16_t> {
  using type = __half;
};
template <>
struct DeviceType<bf16_t> {
  using type = __nv_bfloat16;
};

__device__ __forceinline__ float dev_to_acc(float v) {
  return v;
}
__device__ __forceinline__ double dev_to_acc(double v) {
  return v;
}
__device__ __forceinline__ float dev_to_acc(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float dev_to_acc(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T dev_from_float(float v);
template <>
__device__ __forceinline__ float dev_from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half dev_from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 dev_from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <typename T>
__device__ __forceinline__ T dev_from_acc(float v) {
  return dev_from_float<T>(v);
}
template <typename T>
__device__ __forceinline__ T dev_from_acc(double v);
template <>
__device__ __forceinline__ double dev_from_acc<double>(double v) {
  return v;
}

// Compute type: float for 16/32-bit storage, double for float64.
template <typename T>
struct DeviceAcc {
  using type = float;
};
template <>
struct DeviceAcc<double> {
  using type = double;
};

// A 16-byte (or smaller, for N * sizeof(T) < 16) aligned bundle for vector loads and stores.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

}  // namespace af2
