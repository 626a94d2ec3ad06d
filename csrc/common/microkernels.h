// Register-blocked CPU micro-kernels for small dense tiles, written with GCC/Clang vector
// extensions (no intrinsics, no torch): the vector width follows the compile target (AVX-512:
// 64 bytes, AVX/AVX2: 32, otherwise 16). Used by the attention and contrastive-loss kernels.
//
//   scores_tile:  S (n x kCols) = A (n x K) * BT (K x kCols)      BT holds B transposed
//   axpy_rows:    Out (R x D) += C (R x J) * Rows (J x D)          C addressed with strides
//   gemm_nt / gemm_nn_acc: the same two products with larger register blocks (kGemmMR rows),
//                 for callers that pad their row counts to kGemmMR
//
// Both keep their accumulators in vector registers across the reduction dimension, which plain
// `omp simd` loops (that load and store the accumulators every step) do not.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/isa.h"

namespace af2 {
AF2_ISA_BEGIN
namespace mk {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <typename A>
struct Vec {
  typedef A type __attribute__((vector_size(kVecBytes)));
  static constexpr int N = kVecBytes / static_cast<int>(sizeof(A));
};

template <typename A>
inline typename Vec<A>::type vload(const A* p) {
  typename Vec<A>::type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename A>
inline void vstore(A* p, typename Vec<A>::type v) {
  std::memcpy(p, &v, sizeof v);
}
// x - (+0) is x for every x (also -0), so the compiler drops the subtraction and emits a plain
// broadcast (an embedded {1toN} memory operand on AVX-512); `{} + x` would cost an add and a
// register broadcast per splat, which is what limited the older kernels here.
template <typename A>
inline typename Vec<A>::type vsplat(A x) {
  return x - typename Vec<A>::type{};
}

// Rows of the output kept in registers at once: enough to reuse each loaded B vector, few
// enough that accumulators + B vectors fit the register file (32 on AVX-512, 16 otherwise).
// (AVX-512, 4 vectors: 6 rows = 24 accumulators; measured ~2x the FLOP rate of 4 rows on Zen 4.)
template <typename A, int kCols>
constexpr int scores_rows() {
  constexpr int nv = kCols / Vec<A>::N;
  return kVecBytes == 64 ? (nv <= 4 ? 6 : 2) : (nv <= 4 ? 2 : 1);
}

// S[r * kCols + j] = sum_k A[r * K + k] * BT[k * kCols + j], r < n, j < kCols.
template <typename A, int kCols>
void scores_tile(const A* __restrict a, const A* __restrict bt, int64_t n, int64_t K,
                 A* __restrict s) {
  using V = typename Vec<A>::type;
  constexpr int NV = kCols / Vec<A>::N;
  static_assert(kCols % Vec<A>::N == 0, "kCols must be a multiple of the vector width");
  constexpr int RB = scores_rows<A, kCols>();
  int64_t r = 0;
  for (; r + RB <= n; r += RB) {
    V acc[RB][NV] = {};
    for (int64_t k = 0; k < K; ++k) {
      V b[NV];
      for (int c = 0; c < NV; ++c) b[c] = vload(bt + k * kCols + c * Vec<A>::N);
      for (int i = 0; i < RB; ++i) {
        const V ai = vsplat(a[(r + i) * K + k]);
        for (int c = 0; c < NV; ++c) acc[i][c] += ai * b[c];
      }
    }
    for (int i = 0; i < RB; ++i)
      for (int c = 0; c < NV; ++c) vstore(s + (r + i) * kCols + c * Vec<A>::N, acc[i][c]);
  }
  for (; r < n; ++r) {
    V acc[NV] = {};
    for (int64_t k = 0; k < K; ++k) {
      const V ai = vsplat(a[r * K + k]);
      for (int c = 0; c < NV; ++c) acc[c] += ai * vload(bt + k * kCols + c * Vec<A>::N);
    }
    for (int c = 0; c < NV; ++c) vstore(s + r * kCols + c * Vec<A>::N, acc[c]);
  }
}

// out[i * D + d] += sum_j coef[i * ci + j * cj] * rows[j * D + d], i < R, j < J, d < D.
// Zero coefficients are cheap but not skipped (keeps the loop branch-free).
template <typename A>
void axpy_rows(A* __restrict out, const A* __restrict coef, int64_t ci, int64_t cj,
               const A* __restrict rows, int64_t R, int64_t J, int64_t D) {
  using V = typename Vec<A>::type;
  constexpr int VN = Vec<A>::N;
  constexpr int NV = 4;                        // vectors of D per chunk
  constexpr int RB = kVecBytes == 64 ? 6 : 2;  // output rows per block (6 x 4 = 24 accumulators)
  int64_t d0 = 0;
  for (; d0 + NV * VN <= D; d0 += NV * VN) {
    int64_t i = 0;
    for (; i + RB <= R; i += RB) {
      V acc[RB][NV];
      for (int u = 0; u < RB; ++u)
        for (int c = 0; c < NV; ++c) acc[u][c] = vload(out + (i + u) * D + d0 + c * VN);
      for (int64_t j = 0; j < J; ++j) {
        V rv[NV];
        for (int c = 0; c < NV; ++c) rv[c] = vload(rows + j * D + d0 + c * VN);
        for (int u = 0; u < RB; ++u) {
          const V cu = vsplat(coef[(i + u) * ci + j * cj]);
          for (int c = 0; c < NV; ++c) acc[u][c] += cu * rv[c];
        }
      }
      for (int u = 0; u < RB; ++u)
        for (int c = 0; c < NV; ++c) vstore(out + (i + u) * D + d0 + c * VN, acc[u][c]);
    }
    for (; i < R; ++i) {
      V acc[NV];
      for (int c = 0; c < NV; ++c) acc[c] = vload(out + i * D + d0 + c * VN);
      for (int64_t j = 0; j < J; ++j) {
        const V cu = vsplat(coef[i * ci + j * cj]);
        for (int c = 0; c < NV; ++c) acc[c] += cu * vload(rows + j * D + d0 + c * VN);
      }
      for (int c = 0; c < NV; ++c) vstore(out + i * D + d0 + c * VN, acc[c]);
    }
  }
  if (d0 < D) {  // tail of D
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < J; ++j) {
        const A cu = coef[i * ci + j * cj];
#pragma omp simd
        for (int64_t d = d0; d < D; ++d) out[i * D + d] += cu * rows[j * D + d];
      }
  }
}

// ---- GEMM-shaped micro-kernels (the contrastive loss) ----------------------------------------
// Measured on Zen 4 (AVX-512, one core, D = 512): 12 rows x 2 vectors (24 accumulators) runs at
// ~105-115 GFLOP/s, near the FMA peak, where 4 x 4 (16 accumulators, a vector load per 4 FMAs)
// reaches ~30-58. With 16 vector registers (AVX/SSE) 6 x 2 keeps 12 accumulators.
constexpr int kGemmMR = kVecBytes == 64 ? 12 : 6;  // output rows per micro-tile
constexpr int kGemmNV = 2;                         // output vectors per micro-tile row

// S[i * lds + c] = sum_k A[i * lda + k] * BT[k * ldb + c], i < kGemmMR, c < kGemmNV * N.
template <typename A>
inline void gemm_nt_micro(const A* __restrict a, int64_t lda, const A* __restrict bt, int64_t ldb,
                          int64_t K, A* __restrict s, int64_t lds) {
  using V = typename Vec<A>::type;
  constexpr int VN = Vec<A>::N, MR = kGemmMR, NV = kGemmNV;
  V acc[MR][NV] = {};
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int c = 0; c < NV; ++c) b[c] = vload(bt + k * ldb + c * VN);
    for (int i = 0; i < MR; ++i) {
      const V ai = vsplat(a[i * lda + k]);
      for (int c = 0; c < NV; ++c) acc[i][c] += ai * b[c];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int c = 0; c < NV; ++c) vstore(s + i * lds + c * VN, acc[i][c]);
}

// S (R x C) = A (R x K, row stride lda) * BT (K x C, row stride C): scores of R query rows
// against C keys stored transposed. R % kGemmMR == 0 and C % (kGemmNV * N) == 0.
template <typename A>
void gemm_nt(const A* __restrict a, int64_t lda, int64_t R, const A* __restrict bt, int64_t C,
             int64_t K, A* __restrict s) {
  constexpr int64_t CW = kGemmNV * Vec<A>::N;
  for (int64_t c0 = 0; c0 < C; c0 += CW)
    for (int64_t r = 0; r < R; r += kGemmMR)
      gemm_nt_micro<A>(a + r * lda, lda, bt + c0, C, K, s + r * C + c0, C);
}

// Out (R x D, row stride D) += Coef (R x J; element (i, j) at coef[i * ci + j * cj]) * Rows
// (J x D, row stride D). R % kGemmMR == 0; any D (a scalar tail past the last full chunk).
template <typename A>
void gemm_nn_acc(A* __restrict out, const A* __restrict coef, int64_t ci, int64_t cj,
                 const A* __restrict rows, int64_t R, int64_t J, int64_t D) {
  using V = typename Vec<A>::type;
  constexpr int VN = Vec<A>::N, MR = kGemmMR, NV = kGemmNV, CW = NV * VN;
  int64_t d0 = 0;
  for (; d0 + CW <= D; d0 += CW)
    for (int64_t i = 0; i < R; i += MR) {
      V acc[MR][NV];
      for (int u = 0; u < MR; ++u)
        for (int c = 0; c < NV; ++c) acc[u][c] = vload(out + (i + u) * D + d0 + c * VN);
      for (int64_t j = 0; j < J; ++j) {
        V rv[NV];
        for (int c = 0; c < NV; ++c) rv[c] = vload(rows + j * D + d0 + c * VN);
        for (int u = 0; u < MR; ++u) {
          const V cu = vsplat(coef[(i + u) * ci + j * cj]);
          for (int c = 0; c < NV; ++c) acc[u][c] += cu * rv[c];
        }
      }
      for (int u = 0; u < MR; ++u)
        for (int c = 0; c < NV; ++c) vstore(out + (i + u) * D + d0 + c * VN, acc[u][c]);
    }
  if (d0 < D)
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < J; ++j) {
        const A cu = coef[i * ci + j * cj];
        for (int64_t d = d0; d < D; ++d) out[i * D + d] += cu * rows[j * D + d];
      }
}

}  // namespace mk
AF2_ISA_END
}  // namespace af2
