// Contrastive loss, the generic (SIMT) CUDA kernels and their launchers: every dtype, the only
// path for float32 / float64, and pairs_kernel (positives, hard negatives, terms) of both paths.
//
// What: contrastive.h's row_lse / col_lse / pair_lse / terms (forward) and gradients (backward).
// How:  one warp per row, kWarps warps per block: a warp holds its query row in registers (EPL
//       elements of D per lane, coalesced; common/warp_rows.cuh), walks every key row with a
//       warp-shuffle dot product and keeps an online log-sum-exp (forward) or accumulates its
//       gradient row (backward). Query-side kernels own query rows, key-side kernels key rows,
//       so no gradient row is written by two warps; d(scale) is one double (atomicAdd).
// Assumes: contiguous row-major inputs, D <= 32 EPL; the logit scale on the device.
// Part of contrastive.cu's translation unit (its anonymous namespace); included there only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_types.cuh"
#include "common/warp_rows.cuh"
#include "contrastive/contrastive.h"

namespace af2 {
namespace {

constexpr int kWarps = 4;

template <typename A>
__device__ __forceinline__ A neg_inf() {
  return -INFINITY;
}

__device__ __forceinline__ int64_t warp_row() {
  return int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
}

// lse[q] = log sum_{k outside [q_own*M, q_own*M + M) if exclude} exp(s <Q_q, K_k>).
template <typename T, typename A, int EPL>
__global__ void lse_kernel(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D,
                           const A* scale_p, int64_t excl_block, int64_t offset, A* lse) {
  const int64_t q = warp_row();
  const int lane = threadIdx.x % 32;
  if (q >= nq) return;
  const A scale = *scale_p;
  A qr[EPL];
  lane_load<T, A, EPL>(Q + q * D, D, lane, qr);
  const int64_t lo = excl_block > 0 ? (q + offset) * excl_block : 0,
                hi = excl_block > 0 ? lo + excl_block : 0;
  A m = neg_inf<A>(), l = 0;
  for (int64_t k = 0; k < nk; ++k) {
    if (k >= lo && k < hi) continue;
    const A s = scale * lane_dot<T, A, EPL>(qr, K + k * D, D, lane);
    const A m_new = m > s ? m : s;
    l = l * acc_exp(m - m_new) + acc_exp(s - m_new);
    m = m_new;
  }
  if (lane == 0) lse[q] = l > A(0) ? m + acc_log(l) : neg_inf<A>();
}

// One warp per (i, j): positive and negative scores, pair_lse, and both terms.
template <typename T, typename A, int EPL>
__global__ void pairs_kernel(const ContrastParams p, const ContrastForward f) {
  const int64_t row = warp_row();  // i * M + j
  const int lane = threadIdx.x % 32;
  if (row >= p.B * p.M) return;
  const int64_t i = row / p.M, D = p.D;
  const A scale = *static_cast<const A*>(p.scale_device);
  A a[EPL];
  lane_load<T, A, EPL>(static_cast<const T*>(p.audio) + i * D, D, lane, a);
  const A pos = scale * lane_dot<T, A, EPL>(a, static_cast<const T*>(p.text) + row * D, D, lane);
  const A others = static_cast<const A*>(f.row_lse)[i];
  A m = pos > others ? pos : others,
    l = acc_exp(pos - m) + (others == neg_inf<A>() ? A(0) : acc_exp(others - m));
  for (int64_t n = 0; n < p.N; ++n) {
    const A h =
        scale * lane_dot<T, A, EPL>(a, static_cast<const T*>(p.neg) + (row * p.N + n) * D, D, lane);
    const A m_new = m > h ? m : h;
    l = l * acc_exp(m - m_new) + acc_exp(h - m_new);
    m = m_new;
  }
  if (lane == 0) {
    const A pl = m + acc_log(l);
    static_cast<A*>(f.pair_lse)[row] = pl;
    static_cast<A*>(f.terms)[row] = pl - pos;
    static_cast<A*>(f.terms)[p.B * p.M + row] = static_cast<const A*>(f.col_lse)[row] - pos;
  }
}

// w_i = sum_j g_a[i, j] exp(row_lse_i - pair_lse_ij): the weight of the shared "others" part.
template <typename A>
__global__ void others_weight_kernel(const ContrastParams p, const ContrastBackward g, A* w) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.B) return;
  const A* ga = static_cast<const A*>(g.grad_terms);
  const A rl = static_cast<const A*>(g.row_lse)[i];
  A acc = 0;
  if (rl != neg_inf<A>())
    for (int64_t j = 0; j < p.M; ++j)
      acc += ga[i * p.M + j] * acc_exp(rl - static_cast<const A*>(g.pair_lse)[i * p.M + j]);
  w[i] = acc;
}

// dS of one score. a2t: query = local audio i, key = global text row q.
// t2a: query = local text row (i, j), key = global audio row k.
template <typename A, bool kA2T>
__device__ __forceinline__ A coef(const ContrastParams& p, const ContrastBackward& g, const A* w,
                                  int64_t query, int64_t key, A s) {
  const A* gt = static_cast<const A*>(g.grad_terms);
  if constexpr (kA2T) {
    if (key / p.M == query + p.offset) {
      const int64_t r = query * p.M + key % p.M;
      return gt[r] * (acc_exp(s - static_cast<const A*>(g.pair_lse)[r]) - A(1));
    }
    return w[query] * acc_exp(s - static_cast<const A*>(g.row_lse)[query]);
  } else {
    const A hit = key == query / p.M + p.offset ? A(1) : A(0);
    return gt[p.B * p.M + query] * (acc_exp(s - static_cast<const A*>(g.col_lse)[query]) - hit);
  }
}

template <typename T, typename A, int EPL, bool kA2T>
__global__ void grad_query_kernel(const ContrastParams p, const ContrastBackward g, const A* w) {
  const int64_t q = warp_row();
  const int lane = threadIdx.x % 32;
  const int64_t nq = kA2T ? p.B : p.B * p.M, nk = kA2T ? p.G * p.M : p.G, D = p.D;
  if (q >= nq) return;
  const T* Q = static_cast<const T*>(kA2T ? p.audio : p.text);
  const T* K = static_cast<const T*>(kA2T ? p.text_all : p.audio_all);
  const A scale = *static_cast<const A*>(p.scale_device);
  A qr[EPL], dq[EPL];
  lane_load<T, A, EPL>(Q + q * D, D, lane, qr);
#pragma unroll
  for (int u = 0; u < EPL; ++u) dq[u] = 0;
  double dscale = 0;
  for (int64_t k = 0; k < nk; ++k) {
    const A dot = lane_dot<T, A, EPL>(qr, K + k * D, D, lane);
    const A ds = coef<A, kA2T>(p, g, w, q, k, scale * dot);
    dscale += static_cast<double>(ds * dot);
    lane_axpy<T, A, EPL>(dq, ds, K + k * D, D, lane);
  }
  if (kA2T) {  // the hard negatives of audio row q
    const A* ga = static_cast<const A*>(g.grad_terms);
    for (int64_t j = 0; j < p.M; ++j)
      for (int64_t n = 0; n < p.N; ++n) {
        const int64_t r = (q * p.M + j) * p.N + n;
        const T* h = static_cast<const T*>(p.neg) + r * D;
        const A hd = lane_dot<T, A, EPL>(qr, h, D, lane);
        const A dh =
            ga[q * p.M + j] * acc_exp(scale * hd - static_cast<const A*>(g.pair_lse)[q * p.M + j]);
        dscale += static_cast<double>(dh * hd);
        lane_axpy<T, A, EPL>(dq, dh, h, D, lane);
        lane_store<T, A, EPL>(static_cast<T*>(g.d_neg) + r * D, qr, scale * dh, D, lane);
      }
  }
  lane_store<T, A, EPL>(static_cast<T*>(kA2T ? g.d_audio : g.d_text) + q * D, dq, scale, D, lane);
  if (lane == 0) atomicAdd(g.d_scale, dscale);
}

template <typename T, typename A, int EPL, bool kA2T>
__global__ void grad_key_kernel(const ContrastParams p, const ContrastBackward g, const A* w) {
  const int64_t k = warp_row();
  const int lane = threadIdx.x % 32;
  const int64_t nq = kA2T ? p.B : p.B * p.M, nk = kA2T ? p.G * p.M : p.G, D = p.D;
  if (k >= nk) return;
  const T* Q = static_cast<const T*>(kA2T ? p.audio : p.text);
  const T* K = static_cast<const T*>(kA2T ? p.text_all : p.audio_all);
  const A scale = *static_cast<const A*>(p.scale_device);
  A kr[EPL], dk[EPL];
  lane_load<T, A, EPL>(K + k * D, D, lane, kr);
#pragma unroll
  for (int u = 0; u < EPL; ++u) dk[u] = 0;
  for (int64_t q = 0; q < nq; ++q) {
    const A dot = lane_dot<T, A, EPL>(kr, Q + q * D, D, lane);
    lane_axpy<T, A, EPL>(dk, coef<A, kA2T>(p, g, w, q, k, scale * dot), Q + q * D, D, lane);
  }
  lane_store<T, A, EPL>(static_cast<T*>(kA2T ? g.d_text_all : g.d_audio_all) + k * D, dk, scale, D,
                        lane);
}

unsigned warp_blocks(int64_t rows) {
  return static_cast<unsigned>((rows + kWarps - 1) / kWarps);
}

template <typename T, typename A, int EPL>
cudaError_t forward_impl(const ContrastParams& p, const ContrastForward& f, cudaStream_t s) {
  const T* audio = static_cast<const T*>(p.audio);
  const T* text = static_cast<const T*>(p.text);
  const A* scale = static_cast<const A*>(p.scale_device);
  lse_kernel<T, A, EPL><<<warp_blocks(p.B), 32 * kWarps, 0, s>>>(
      audio, p.B, static_cast<const T*>(p.text_all), p.G * p.M, p.D, scale, p.M, p.offset,
      static_cast<A*>(f.row_lse));
  lse_kernel<T, A, EPL><<<warp_blocks(p.B * p.M), 32 * kWarps, 0, s>>>(
      text, p.B * p.M, static_cast<const T*>(p.audio_all), p.G, p.D, scale, 0, 0,
      static_cast<A*>(f.col_lse));
  pairs_kernel<T, A, EPL><<<warp_blocks(p.B * p.M), 32 * kWarps, 0, s>>>(p, f);
  return cudaGetLastError();
}

template <typename T, typename A, int EPL>
cudaError_t backward_impl(const ContrastParams& p, const ContrastBackward& g, cudaStream_t s) {
  A* w = nullptr;
  cudaError_t err =
      cudaMallocAsync(reinterpret_cast<void**>(&w), sizeof(A) * (p.B > 0 ? p.B : 1), s);
  if (err != cudaSuccess) return err;
  others_weight_kernel<A><<<static_cast<unsigned>((p.B + 255) / 256), 256, 0, s>>>(p, g, w);
  grad_query_kernel<T, A, EPL, true><<<warp_blocks(p.B), 32 * kWarps, 0, s>>>(p, g, w);
  grad_key_kernel<T, A, EPL, true><<<warp_blocks(p.G * p.M), 32 * kWarps, 0, s>>>(p, g, w);
  grad_query_kernel<T, A, EPL, false><<<warp_blocks(p.B * p.M), 32 * kWarps, 0, s>>>(p, g, w);
  grad_key_kernel<T, A, EPL, false><<<warp_blocks(p.G), 32 * kWarps, 0, s>>>(p, g, w);
  err = cudaGetLastError();
  const cudaError_t freed = cudaFreeAsync(w, s);
  return err != cudaSuccess ? err : freed;
}

}  // namespace
}  // namespace af2
