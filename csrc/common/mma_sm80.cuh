// Tensor-core building blocks shared by the sm80+ kernels (media attention, contrastive loss).
//
// What: MmaOps<T>::mma, one mma.sync m16n8k16 with fp32 accumulation for bf16 / fp16 fragments
//       (CuTe's SM80 atoms), MmaOps<T>::pack (two floats -> one packed 32-bit fragment register);
//       ldsm_x4 / ldsm_x4_trans (ldmatrix .x4, plain and transposed) and cp_async_16 (16-byte
//       cp.async, zero-filled when pred is false).
// How:  thin inline wrappers over the CuTe arch atoms, so every kernel names the same operations.
// Assumes: sm_80 or newer; shared-memory addresses 16-byte aligned for ldmatrix and cp.async.
#pragma once

#include <cute/arch/copy_sm75.hpp>
#include <cute/arch/copy_sm80.hpp>
#include <cute/arch/mma_sm80.hpp>

#include <cstdint>

#include "common/cuda_types.cuh"

namespace af2::tc {

template <typename T>
struct MmaOps;
template <>
struct MmaOps<__nv_bfloat16> {
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    cute::SM80_16x8x16_F32BF16BF16F32_TN::fma(d[0], d[1], d[2], d[3], a[0], a[1], a[2], a[3], b0,
                                              b1, d[0], d[1], d[2], d[3]);
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};
template <>
struct MmaOps<__half> {
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    cute::SM80_16x8x16_F32F16F16F32_TN::fma(d[0], d[1], d[2], d[3], a[0], a[1], a[2], a[3], b0, b1,
                                            d[0], d[1], d[2], d[3]);
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
  }
};

__device__ __forceinline__ void ldsm_x4(const void* smem, uint32_t (&r)[4]) {
  cute::SM75_U32x4_LDSM_N::copy(*reinterpret_cast<const cute::uint128_t*>(smem), r[0], r[1], r[2],
                                r[3]);
}
__device__ __forceinline__ void ldsm_x4_trans(const void* smem, uint32_t (&r)[4]) {
  cute::SM75_U16x8_LDSM_T::copy(*reinterpret_cast<const cute::uint128_t*>(smem), r[0], r[1], r[2],
                                r[3]);
}
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool pred) {
  cute::SM80_CP_ASYNC_CACHEGLOBAL_ZFILL<cute::uint128_t>::copy(
      *reinterpret_cast<const cute::uint128_t*>(gmem), *reinterpret_cast<cute::uint128_t*>(smem),
      pred);
}

}  // namespace af2::tc
