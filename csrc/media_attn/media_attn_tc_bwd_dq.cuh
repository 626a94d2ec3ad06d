// Media cross-attention backward on tensor cores, launch 3: dq_kernel (media_attn_tc_bwd.cuh
// describes the three launches, the thread -> data mapping and the assumptions).
//
// What: dQ = scale dS K for 64 queries of one (b, h) per CTA.
// How:  grid (ceil(Lq / BM), H, B), 4 warps of 16 queries: the forward kernel's walk over only
//       the key tiles some row attends, K / V double buffered with cp.async; per key tile
//       S = Q K^T, dP = dO V^T, dS = P * (dP - Delta), dQ += dS K, all mma.sync; dQ stays in
//       registers until the end.
// Assumes: what media_attn_tc_bwd.cuh's kernels assume; Delta from its preprocess_kernel.
#pragma once

#include "media_attn/media_attn_tc_bwd.cuh"

namespace af2::media_attn_tc {

// ---- 3. dQ: a CTA per (query block, h, b), the forward's walk over key tiles ------------------
template <int D>
constexpr int dq_smem_bytes() {
  return (2 * kBM + 4 * kBN) * (D + 8) * 2 + 2 * kBM * 4 + 2 * kBN;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(const BwdArgs a) {
  constexpr int LD = D + 8, CH = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);  // [kBM][LD]
  T* Gs = Qs + kBM * LD;               // [kBM][LD], dO
  T* Ks = Gs + kBM * LD;               // [2][kBN][LD]
  T* Vs = Ks + 2 * kBN * LD;           // [2][kBN][LD]
  int* rs = reinterpret_cast<int*>(Vs + 2 * kBN * LD);
  int* re = rs + kBM;
  uint8_t* kval = reinterpret_cast<uint8_t*>(re + kBM);  // [2][kBN]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int h = blockIdx.y, b = blockIdx.z, i0 = blockIdx.x * kBM;
  const T* qg = row_ptr<T>(a.q, b, 0, h);
  const T* gg = row_ptr<T>(a.dout, b, 0, h);
  const T* kg = row_ptr<T>(a.k, b, 0, h);
  const T* vg = row_ptr<T>(a.v, b, 0, h);

  if (tid < kBM) {
    const int2 r = clipped_key_range(a.key_start, a.key_end, b, i0 + tid, a.Lq, a.Lk);
    rs[tid] = r.x;
    re[tid] = r.y;
  }
  for (int c = tid; c < kBM * CH; c += kThreads) {
    const int r = c / CH, col = (c % CH) * 8, i = i0 + r;
    const bool in = i < a.Lq;
    cp_async_16(Qs + r * LD + col, qg + int64_t(in ? i : 0) * a.q.sl + col, in);
    cp_async_16(Gs + r * LD + col, gg + int64_t(in ? i : 0) * a.dout.sl + col, in);
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
      cp_async_16(kd + r * LD + col, kg + int64_t(in ? j : 0) * a.k.sl + col, in);
      cp_async_16(vd + r * LD + col, vg + int64_t(in ? j : 0) * a.v.sl + col, in);
    }
    if (tid < kBN) {
      const int j = t0 + tid;
      kval[stage * kBN + tid] = j < a.Lk && (a.pad == nullptr || a.pad[int64_t(b) * a.Lk + j]);
    }
  };

  int t_cur = walk.first();
  if (t_cur < hi) load_kv(0, t_cur);
  cute::cp_async_fence();

  const int row0 = warp * 16 + g, row1 = row0 + 8;
  const int s0 = rs[row0], e0 = re[row0], s1 = rs[row1], e1 = re[row1];
  const int i_r0 = i0 + row0, i_r1 = i0 + row1;
  const int64_t lrow = (int64_t(b) * a.H + h) * a.Lq;
  const float l2_0 = i_r0 < a.Lq ? a.lse[lrow + i_r0] * kLog2e : INFINITY;
  const float l2_1 = i_r1 < a.Lq ? a.lse[lrow + i_r1] * kLog2e : INFINITY;
  const float dl0 = i_r0 < a.Lq ? a.delta[lrow + i_r0] : 0.f;
  const float dl1 = i_r1 < a.Lq ? a.delta[lrow + i_r1] : 0.f;
  const float sl2 = a.scale * kLog2e;
  float acc[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) acc[dt][0] = acc[dt][1] = acc[dt][2] = acc[dt][3] = 0.f;
  int stage = 0;

  while (t_cur < hi) {
    const int t_next = walk.next(t_cur);
    if (t_next < hi) load_kv(stage ^ 1, t_next);
    cute::cp_async_fence();
    cute::cp_async_wait<1>();
    __syncthreads();
    const T* kt = Ks + stage * kBN * LD;
    const T* vt = Vs + stage * kBN * LD;

    float S[kBN / 8][4], dP[kBN / 8][4];
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) S[nt][c] = dP[nt][c] = 0.f;
    warp_mma_nt<T, kBN, D, LD>(S, Qs + warp * 16 * LD, kt, lane);   // S = Q K^T
    warp_mma_nt<T, kBN, D, LD>(dP, Gs + warp * 16 * LD, vt, lane);  // dP = dO V^T
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
      // key flags of columns nt * 8 + 2 t4 (low byte) and + 1 (high byte)
      const unsigned kv2 = *reinterpret_cast<const uint16_t*>(kval + stage * kBN + nt * 8 + 2 * t4);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = nt * 8 + 2 * t4 + (c & 1), j = t_cur + col;
        const bool valid =
            ((kv2 >> (8 * (c & 1))) & 0xffu) && (c < 2 ? (j >= s0 && j < e0) : (j >= s1 && j < e1));
        const float p = valid ? exp2f(fmaf(S[nt][c], sl2, -(c < 2 ? l2_0 : l2_1))) : 0.f;
        S[nt][c] = p * (dP[nt][c] - (c < 2 ? dl0 : dl1));  // dS (unscaled)
      }
    }
    warp_mma_rn<T, kBN, D, LD>(acc, S, kt, lane);  // dQ += dS K
    __syncthreads();
    stage ^= 1;
    t_cur = t_next;
  }
  cute::cp_async_wait<0>();
  // A row with no key (lse = +inf) gets dq = 0 exactly: acc may hold 0 * NaN from other rows' keys.
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    if (l2_0 == INFINITY) acc[dt][0] = acc[dt][1] = 0.f;
    if (l2_1 == INFINITY) acc[dt][2] = acc[dt][3] = 0.f;
  }
  store_rows<T, D>(acc, row_ptr<T>(a.dq, b, 0, h), a.dq.sl, i0 + row0, a.Lq, a.scale, a.scale, t4);
}

}  // namespace af2::media_attn_tc
