// Media cross-attention forward on tensor cores (bf16 / fp16, head dim 64 or 128).
//
// What: out = softmax(scale q k^T) v over each query's key range and the padding mask, and
//       the log-sum-exp per (b, h, query) for the backward (media_attn.h has the contract).
// How:  flash-attention-2 style. A CTA of 4 warps owns BM = 64 queries of one (b, h); each
//       warp owns 16 query rows. The CTA walks the union of its rows' key ranges in tiles of
//       BN = 64 keys, skipping tiles that none of its rows attends, with K/V tiles double
//       buffered in shared memory (cp.async, zero-filled past Lk). Scores S = Q K^T and the
//       update O += P V are mma.sync m16n8k16 (CuTe's SM80 atoms; fp32 accumulation), with Q
//       and K fed by ldmatrix and V by ldmatrix.trans; P is re-packed from the S accumulators
//       straight into A fragments. The online softmax runs in registers in log2 units; rows
//       with no key keep max = -inf and end with output 0 and lse = +inf; a NaN score makes
//       the row's sum, output and lse NaN.
// Assumes: 16-byte aligned q/k/v with unit stride along D and (B, L, H) strides multiple of 8
//       elements (the launcher checks and falls back to the generic kernel otherwise);
//       shared memory rows padded by 8 elements so ldmatrix is free of bank conflicts.
#pragma once

#include <cstdint>

#include "common/cuda_types.cuh"
#include "common/mma_sm80.cuh"
#include "media_attn/media_attn.h"

namespace af2::media_attn_tc {

constexpr int kBM = 64, kBN = 64, kWarps = 4, kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

using af2::tc::cp_async_16;
using af2::tc::ldsm_x4;
using af2::tc::ldsm_x4_trans;
using af2::tc::MmaOps;

// Query row i of batch b: its key range clipped to [0, Lk); (0, 0) when that is empty or i >= Lq.
__device__ __forceinline__ int2 clipped_key_range(const int32_t* key_start, const int32_t* key_end,
                                                  int b, int i, int Lq, int Lk) {
  if (i >= Lq) return make_int2(0, 0);
  const int s = max(0, key_start[int64_t(b) * Lq + i]), e = min(Lk, key_end[int64_t(b) * Lq + i]);
  return s < e ? make_int2(s, e) : make_int2(0, 0);
}

// The key tiles (BN keys each, starting at multiples of BN) that a block of BM query rows visits,
// in increasing order: those intersecting at least one row's non-empty range [rs[r], re[r])
// (shared memory, filled before construction; empty rows hold rs = re = 0). hi = the largest
// range end: first() and next() return hi when no tile is left.
template <int BM, int BN>
struct KeyTileWalk {
  const int* rs;
  const int* re;
  int lo, hi;
  __device__ KeyTileWalk(const int* rs_, const int* re_, int Lk) : rs(rs_), re(re_), lo(Lk), hi(0) {
    for (int r = 0; r < BM; ++r)
      if (re[r] > rs[r]) lo = min(lo, rs[r]), hi = max(hi, re[r]);
  }
  __device__ bool needed(int t0) const {
    for (int r = 0; r < BM; ++r)
      if (rs[r] < re[r] && rs[r] < t0 + BN && re[r] > t0) return true;
    return false;
  }
  __device__ int next(int t0) const {
    for (t0 += BN; t0 < hi; t0 += BN)
      if (needed(t0)) return t0;
    return hi;
  }
  __device__ int first() const {
    if (lo >= hi) return hi;
    const int t0 = (lo / BN) * BN;
    return needed(t0) ? t0 : next(t0);
  }
};

struct FwdArgs {
  const void *q, *k, *v;
  int64_t q_sb, q_sl, q_sh, k_sb, k_sl, k_sh, v_sb, v_sl, v_sh;
  void* out;
  int64_t o_sb, o_sl, o_sh;
  float* lse;
  const int32_t *key_start, *key_end;
  const uint8_t* pad;
  int Lq, Lk, H;
  float scale;
};

template <int D>
constexpr int smem_bytes() {
  return (kBM + 4 * kBN) * (D + 8) * 2 + 2 * kBM * 4 + 2 * kBN;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) forward_kernel(const FwdArgs a) {
  constexpr int LD = D + 8;  // smem row stride (elements): rows 16 bytes apart mod 128
  constexpr int CH = D / 8;  // 16-byte chunks per row
  using Ops = MmaOps<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = Qs + kBM * LD;      // [2][kBN * LD]
  T* Vs = Ks + 2 * kBN * LD;  // [2][kBN * LD]
  int* rs = reinterpret_cast<int*>(Vs + 2 * kBN * LD);
  int* re = rs + kBM;
  uint8_t* kval = reinterpret_cast<uint8_t*>(re + kBM);  // [2][kBN]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int h = blockIdx.y, b = blockIdx.z, i0 = blockIdx.x * kBM;
  const T* q = static_cast<const T*>(a.q) + b * a.q_sb + h * a.q_sh;
  const T* k = static_cast<const T*>(a.k) + b * a.k_sb + h * a.k_sh;
  const T* v = static_cast<const T*>(a.v) + b * a.v_sb + h * a.v_sh;

  if (tid < kBM) {
    const int2 r = clipped_key_range(a.key_start, a.key_end, b, i0 + tid, a.Lq, a.Lk);
    rs[tid] = r.x;
    re[tid] = r.y;
  }
  for (int c = tid; c < kBM * CH; c += kThreads) {
    const int r = c / CH, col = (c % CH) * 8, i = i0 + r;
    cp_async_16(Qs + r * LD + col, q + int64_t(i < a.Lq ? i : 0) * a.q_sl + col, i < a.Lq);
  }
  __syncthreads();

  const KeyTileWalk<kBM, kBN> walk(rs, re, a.Lk);
  const int hi = walk.hi;
  auto load_kv = [&](int stage, int t0) {
    T* kd = Ks + stage * kBN * LD;
    T* vd = Vs + stage * kBN * LD;
    for (int c = tid; c < kBN * CH; c += kThreads) {
      const int r = c / CH, col = (c % CH) * 8, j = t0 + r;
      const bool in = j < a.Lk;
      cp_async_16(kd + r * LD + col, k + int64_t(in ? j : 0) * a.k_sl + col, in);
      cp_async_16(vd + r * LD + col, v + int64_t(in ? j : 0) * a.v_sl + col, in);
    }
    if (tid < kBN) {
      const int j = t0 + tid;
      kval[stage * kBN + tid] = j < a.Lk && (a.pad == nullptr || a.pad[int64_t(b) * a.Lk + j]);
    }
  };

  int t_cur = walk.first();
  if (t_cur < hi) load_kv(0, t_cur);
  cute::cp_async_fence();

  float acc[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const int row0 = warp * 16 + g, row1 = row0 + 8;
  const int s0 = rs[row0], e0 = re[row0], s1 = rs[row1], e1 = re[row1];
  const float sl2 = a.scale * kLog2e;
  const int lm = lane / 8, lr = lane % 8;  // ldmatrix: which 8x8 matrix, which row of it
  int stage = 0;

  while (t_cur < hi) {
    const int t_next = walk.next(t_cur);
    if (t_next < hi) load_kv(stage ^ 1, t_next);
    cute::cp_async_fence();
    cute::cp_async_wait<1>();
    __syncthreads();
    const T* kt = Ks + stage * kBN * LD;
    const T* vt = Vs + stage * kBN * LD;

    float S[kBN / 8][4];
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) S[nt][0] = S[nt][1] = S[nt][2] = S[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4];
      ldsm_x4(Qs + (warp * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8, qa);
#pragma unroll
      for (int np = 0; np < kBN / 16; ++np) {
        uint32_t kb[4];
        ldsm_x4(kt + (np * 16 + lr + (lm / 2) * 8) * LD + kk * 16 + (lm % 2) * 8, kb);
        Ops::mma(S[2 * np], qa, kb[0], kb[1]);
        Ops::mma(S[2 * np + 1], qa, kb[2], kb[3]);
      }
    }

    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = nt * 8 + 2 * t4 + (c & 1), j = t_cur + col;
        const bool valid =
            kval[stage * kBN + col] && (c < 2 ? (j >= s0 && j < e0) : (j >= s1 && j < e1));
        S[nt][c] = valid ? S[nt][c] * sl2 : -INFINITY;
      }
      mx0 = fmaxf(mx0, fmaxf(S[nt][0], S[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(S[nt][2], S[nt][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off *= 2) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    const float al0 = exp2f(m0 - mu0), al1 = exp2f(m1 - mu1);
    m0 = mn0;
    m1 = mn1;
    float ls0 = 0.f, ls1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
      S[nt][0] = exp2f(S[nt][0] - mu0);
      S[nt][1] = exp2f(S[nt][1] - mu0);
      S[nt][2] = exp2f(S[nt][2] - mu1);
      S[nt][3] = exp2f(S[nt][3] - mu1);
      ls0 += S[nt][0] + S[nt][1];
      ls1 += S[nt][2] + S[nt][3];
    }
    l0 = l0 * al0 + ls0;
    l1 = l1 * al1 + ls1;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      acc[dt][0] *= al0;
      acc[dt][1] *= al0;
      acc[dt][2] *= al1;
      acc[dt][3] *= al1;
    }
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      const uint32_t pa[4] = {Ops::pack(S[2 * kk][0], S[2 * kk][1]),
                              Ops::pack(S[2 * kk][2], S[2 * kk][3]),
                              Ops::pack(S[2 * kk + 1][0], S[2 * kk + 1][1]),
                              Ops::pack(S[2 * kk + 1][2], S[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vb[4];
        ldsm_x4_trans(vt + (kk * 16 + lr + (lm % 2) * 8) * LD + dp * 16 + (lm / 2) * 8, vb);
        Ops::mma(acc[2 * dp], pa, vb[0], vb[1]);
        Ops::mma(acc[2 * dp + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
    stage ^= 1;
    t_cur = t_next;
  }
  cute::cp_async_wait<0>();

#pragma unroll
  for (int off = 1; off < 4; off *= 2) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  // A row with no key outputs exactly 0: its acc may hold 0 * NaN from keys of other rows.
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    if (l0 == 0.f) acc[dt][0] = acc[dt][1] = 0.f;
    if (l1 == 0.f) acc[dt][2] = acc[dt][3] = 0.f;
  }
  T* out = static_cast<T*>(a.out) + b * a.o_sb + h * a.o_sh;
  const int i_r0 = i0 + row0, i_r1 = i0 + row1;
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int col = dt * 8 + 2 * t4;
    if (i_r0 < a.Lq)
      *reinterpret_cast<uint32_t*>(out + int64_t(i_r0) * a.o_sl + col) =
          Ops::pack(acc[dt][0] * inv0, acc[dt][1] * inv0);
    if (i_r1 < a.Lq)
      *reinterpret_cast<uint32_t*>(out + int64_t(i_r1) * a.o_sl + col) =
          Ops::pack(acc[dt][2] * inv1, acc[dt][3] * inv1);
  }
  if (t4 == 0) {
    float* lse = a.lse + (int64_t(b) * a.H + h) * a.Lq;
    // l is NaN when a score was NaN: lse is then NaN too, so the backward's p is NaN.
    if (i_r0 < a.Lq) lse[i_r0] = l0 != 0.f ? (m0 + log2f(l0)) * kLn2 : INFINITY;
    if (i_r1 < a.Lq) lse[i_r1] = l1 != 0.f ? (m1 + log2f(l1)) * kLn2 : INFINITY;
  }
}

}  // namespace af2::media_attn_tc
