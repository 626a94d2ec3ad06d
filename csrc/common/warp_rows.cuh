// Warp-per-row helpers of the generic (SIMT) CUDA kernels: a row of D elements is split
// across the 32 lanes (lane holds d = lane + 32 u, u < EPL, so loads are coalesced), dot
// products reduce with warp shuffles, and exp/log pick the fast float or exact double form.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "common/cuda_types.cuh"

namespace af2 {

template <typename A>
__device__ __forceinline__ A warp_sum(A x) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}
__device__ __forceinline__ float acc_exp(float x) {
  return __expf(x);
}
__device__ __forceinline__ double acc_exp(double x) {
  return exp(x);
}
__device__ __forceinline__ float acc_log(float x) {
  return __logf(x);
}
__device__ __forceinline__ double acc_log(double x) {
  return log(x);
}

// r[u] = mult * row[lane + 32 u] (0 past D).
template <typename T, typename A, int EPL>
__device__ __forceinline__ void lane_load(const T* row, int64_t D, int lane, A (&r)[EPL],
                                          A mult = A(1)) {
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    r[u] = d < D ? static_cast<A>(dev_to_acc(row[d])) * mult : A(0);
  }
}
// sum_d q[d] row[d], the same value in every lane.
template <typename T, typename A, int EPL>
__device__ __forceinline__ A lane_dot(const A (&q)[EPL], const T* row, int64_t D, int lane) {
  A acc = 0;
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < D) acc += q[u] * static_cast<A>(dev_to_acc(row[d]));
  }
  return warp_sum(acc);
}
// acc += c * row.
template <typename T, typename A, int EPL>
__device__ __forceinline__ void lane_axpy(A (&acc)[EPL], A c, const T* row, int64_t D, int lane) {
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < D) acc[u] += c * static_cast<A>(dev_to_acc(row[d]));
  }
}
// row = mult * v.
template <typename T, typename A, int EPL>
__device__ __forceinline__ void lane_store(T* row, const A (&v)[EPL], A mult, int64_t D, int lane) {
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < D) row[d] = dev_from_acc<T>(v[u] * mult);
  }
}

// Host side: runs fn(T{}, A{}, std::integral_constant<int, EPL>{}) with the device storage and
// compute types of HostT and the first EPL of the list that holds a row of D elements
// (D <= 32 EPL), so that a kernel is instantiated for a few row widths only:
//   by_dim<HostT, 4, 16, 32>(D, [&](auto t, auto a, auto epl) { return launch<...>(...); })
// Returns cudaErrorInvalidValue when D is over 32 times the last EPL.
template <typename HostT, int EPL, int... WiderEPL, typename Fn>
cudaError_t by_dim(int64_t D, Fn&& fn) {
  using T = typename DeviceType<HostT>::type;
  using A = typename DeviceAcc<T>::type;
  if (D <= int64_t{32} * EPL) return fn(T{}, A{}, std::integral_constant<int, EPL>{});
  if constexpr (sizeof...(WiderEPL) > 0) {
    return by_dim<HostT, WiderEPL...>(D, std::forward<Fn>(fn));
  } else {
    return cudaErrorInvalidValue;
  }
}

}  // namespace af2
