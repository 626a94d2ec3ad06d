// Media cross-attention backward on tensor cores (bf16 / fp16, head dim 64 or 128).
//
// What: dq, dk, dv of media_attn.h's contract from q, k, v, out, grad_out and the forward's lse
//       (natural log, +inf for a query with no key). With P = exp(scale q k^T - lse) over each
//       query's allowed keys (0 elsewhere) and Delta = rowsum(dO * O):
//         dV = P^T dO,  dP = dO V^T,  dS = P * (dP - Delta),  dQ = scale dS K,  dK = scale dS^T Q.
//       fp32 accumulation; P and dS are rounded to T to feed the tensor cores (as
//       FlashAttention-2).
// How:  three launches.
//   1. preprocess_kernel, grid (ceil(Lq / BMq), H, B), 4 threads per query row: Delta (B, H, Lq)
//      in fp32, and (h == 0 blocks) the hull [min key_start, max key_end) of the non-empty rows
//      of every BMq-query tile, (B, ceil(Lq / BMq)) int2 ((Lk, 0) when the tile has no key).
//   2. dkdv_kernel, grid (ceil(Lk / BN), H, B), 4 warps: a CTA owns BN = 64 keys of one (b, h)
//      (FlashAttention-2's parallelisation over keys) and keeps its K and V tiles in shared
//      memory. It walks only the query tiles whose hull meets its keys (cost follows the
//      attended keys; a CTA whose keys are all padded walks none), Q / dO tiles double
//      buffered with cp.async. Each warp owns 16 keys and computes everything transposed, key
//      rows first, so that every product is an mma.sync with the A operand in registers or
//      via ldmatrix: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q.
//      dK and dV of its 16 rows stay in registers until the end; no atomics.
//   3. dq_kernel (media_attn_tc_bwd_dq.cuh), grid (ceil(Lq / BM), H, B), 4 warps: the
//      forward kernel's structure (64 queries per CTA, 16 per warp, only the key tiles some
//      row attends, K / V double buffered): S = Q K^T, dP = dO V^T, dS, dQ += dS K.
//   Why a separate dQ kernel rather than fp32 atomicAdd of dQ from the dK/dV kernel: it needs
//   no (B, Lq, H, D) fp32 workspace, no zeroing and conversion passes and no atomics (so the
//   result is deterministic), and it reuses the forward's exact per-row key-tile skipping.
//   The price is recomputing S and dP (7 instead of 5 tile products). Media attention has
//   short key sets (<= 1920 keys, Dh 64), where the atomic traffic (one fp32 add per query,
//   dim and attended key tile) would be of the same order as that recomputation.
// Thread -> data mapping (mma.sync m16n8k16, g = lane / 4, t4 = lane % 4):
//   accumulator tile [nt][c] of a warp's 16 x 8n block: row g (c < 2) or g + 8 (c >= 2),
//   column nt * 8 + 2 t4 + (c & 1). In dkdv_kernel rows are the warp's keys
//   (n0 + 16 warp + g [+ 8]) and columns the query tile's queries; in dq_kernel rows are the
//   warp's queries and columns the key tile's keys. An accumulator tile re-packs into A
//   fragments of the next product without data movement (k index = its column):
//   a = {P[2kk][0..1], P[2kk][2..3], P[2kk+1][0..1], P[2kk+1][2..3]}.
//   ldmatrix (lanes 8m..8m+7 address the rows of 8x8 matrix m):
//     A from a row-major 16 x K tile: row lane % 16, column 16 kk + 8 (lane / 16);
//     B from an N x K row-major tile (B^T stored, product X Y^T): row 16 np + lane % 8 +
//       8 (lane / 16), column 16 kk + 8 ((lane / 8) % 2) -> b[0..1] n-tile 2np, b[2..3] 2np+1;
//     B from a K x N row-major tile with .trans (product X Y): row 16 kk + lane % 8 +
//       8 ((lane / 8) % 2), column 16 dp + 8 (lane / 16) -> b[0..1] n-tile 2dp, b[2..3] 2dp+1.
// Assumes: what the forward kernel assumes (16-byte aligned q / k / v / out / grad_out with
//   (B, L, H) strides multiple of 8 elements; dq / dk / dv likewise); lse in fp32. The
//   launcher in media_attn.cu checks and otherwise runs the generic backward.
#pragma once

#include <climits>

#include "media_attn/media_attn_tc.cuh"

namespace af2::media_attn_tc {

// Query tile of the dK/dV kernel: 64 for Dh 64; 32 for Dh 128 keeps dK + dV (128 fp32 per
// thread) and the S^T / dP^T tiles in registers without spills.
// (Capping the Dh 64 dK/dV kernel at 168 registers for 3 CTAs per SM spills 8 bytes: not done.)
template <int D>
struct BwdCfg {
  static constexpr int kBMq = D <= 64 ? 64 : 32;
};

struct BwdArgs {
  BLHD q, k, v, dout, out;
  BLHDOut dq, dk, dv;
  const float* lse;  // (B, H, Lq)
  float* delta;      // (B, H, Lq), written by preprocess_kernel
  int2* hull;        // (B, nqt), written by preprocess_kernel
  const int32_t *key_start, *key_end;
  const uint8_t* pad;  // (B, Lk) or null
  int Lq, Lk, H, nqt;
  float scale;
};

template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t u);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t u) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t u) {
  return __half22float2(*reinterpret_cast<const __half2*>(&u));
}

template <typename T>
__device__ __forceinline__ const T* row_ptr(const BLHD& t, int b, int64_t l, int h) {
  return static_cast<const T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
}
template <typename T>
__device__ __forceinline__ T* row_ptr(const BLHDOut& t, int b, int64_t l, int h) {
  return static_cast<T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
}

// C (16 x N) += A (16 x K) B^T: A is the warp's 16 rows at As, B is N rows at Bs (both row
// major with row stride LD, K wide).
template <typename T, int N, int K, int LD>
__device__ __forceinline__ void warp_mma_nt(float (&C)[N / 8][4], const T* As, const T* Bs,
                                            int lane) {
  const int lm = lane / 8, lr = lane % 8;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[4];
    ldsm_x4(As + (lane % 16) * LD + kk * 16 + (lane / 16) * 8, a);
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      uint32_t bf[4];
      ldsm_x4(Bs + (np * 16 + lr + (lm / 2) * 8) * LD + kk * 16 + (lm % 2) * 8, bf);
      MmaOps<T>::mma(C[2 * np], a, bf[0], bf[1]);
      MmaOps<T>::mma(C[2 * np + 1], a, bf[2], bf[3]);
    }
  }
}

// C (16 x N) += P (16 x K) B: P is an fp32 accumulator tile (rounded to T here), B is K rows
// at Bs (row major, row stride LD, N wide) read with ldmatrix.trans.
template <typename T, int K, int N, int LD>
__device__ __forceinline__ void warp_mma_rn(float (&C)[N / 8][4], const float (&P)[K / 8][4],
                                            const T* Bs, int lane) {
  using Ops = MmaOps<T>;
  const int lm = lane / 8, lr = lane % 8;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    const uint32_t pa[4] = {Ops::pack(P[2 * kk][0], P[2 * kk][1]),
                            Ops::pack(P[2 * kk][2], P[2 * kk][3]),
                            Ops::pack(P[2 * kk + 1][0], P[2 * kk + 1][1]),
                            Ops::pack(P[2 * kk + 1][2], P[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < N / 16; ++dp) {
      uint32_t bf[4];
      ldsm_x4_trans(Bs + (kk * 16 + lr + (lm % 2) * 8) * LD + dp * 16 + (lm / 2) * 8, bf);
      Ops::mma(C[2 * dp], pa, bf[0], bf[1]);
      Ops::mma(C[2 * dp + 1], pa, bf[2], bf[3]);
    }
  }
}

// Stores a warp's 16 x D accumulator tile times mult into rows r0 (c < 2) and r0 + 8 of dst.
template <typename T, int D>
__device__ __forceinline__ void store_rows(const float (&acc)[D / 8][4], T* dst, int64_t ld, int r0,
                                           int nrows, float mult0, float mult1, int t4) {
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    const int col = dt * 8 + 2 * t4;
    if (r0 < nrows)
      *reinterpret_cast<uint32_t*>(dst + int64_t(r0) * ld + col) =
          MmaOps<T>::pack(acc[dt][0] * mult0, acc[dt][1] * mult0);
    if (r0 + 8 < nrows)
      *reinterpret_cast<uint32_t*>(dst + int64_t(r0 + 8) * ld + col) =
          MmaOps<T>::pack(acc[dt][2] * mult1, acc[dt][3] * mult1);
  }
}

// ---- 1. Delta and per-query-tile key hulls ---------------------------------------------------
// Thread t: query row i = BMq blockIdx.x + t / 4, chunks (t % 4) + 4u of 8 elements.
template <typename T, int D>
__global__ void __launch_bounds__(BwdCfg<D>::kBMq * 4) preprocess_kernel(const BwdArgs a) {
  constexpr int BMq = BwdCfg<D>::kBMq, CH = D / 8;
  __shared__ int lo_s, hi_s;
  const int tid = threadIdx.x, part = tid % 4, qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int i = qt * BMq + tid / 4;
  float acc = 0.f;
  if (i < a.Lq) {
    const T* go = row_ptr<T>(a.dout, b, i, h);
    const T* o = row_ptr<T>(a.out, b, i, h);
#pragma unroll
    for (int u = 0; u < CH / 4; ++u) {
      const int col = (part + 4 * u) * 8;
      const uint4 x = *reinterpret_cast<const uint4*>(go + col),
                  y = *reinterpret_cast<const uint4*>(o + col);
      const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 xf = unpack2<T>(xs[e]), yf = unpack2<T>(ys[e]);
        acc = fmaf(xf.x, yf.x, fmaf(xf.y, yf.y, acc));
      }
    }
  }
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  if (part == 0 && i < a.Lq) a.delta[(int64_t(b) * a.H + h) * a.Lq + i] = acc;

  if (h == 0) {  // uniform over the block
    if (tid == 0) lo_s = a.Lk, hi_s = 0;
    __syncthreads();
    if (part == 0) {
      const int2 r = clipped_key_range(a.key_start, a.key_end, b, i, a.Lq, a.Lk);
      if (r.x < r.y) atomicMin(&lo_s, r.x), atomicMax(&hi_s, r.y);
    }
    __syncthreads();
    if (tid == 0) a.hull[int64_t(b) * a.nqt + qt] = make_int2(lo_s, hi_s);
  }
}

// ---- 2. dK, dV: a CTA per (key block, h, b) ---------------------------------------------------
template <int D>
constexpr int dkdv_smem_bytes() {
  constexpr int BMq = BwdCfg<D>::kBMq;
  return (2 * kBN + 4 * BMq) * (D + 8) * 2 + 2 * 4 * BMq * 4;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dkdv_kernel(const BwdArgs a) {
  constexpr int BMq = BwdCfg<D>::kBMq, LD = D + 8, CH = D / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Ks = reinterpret_cast<T*>(smem);                    // [kBN][LD]
  T* Vs = Ks + kBN * LD;                                 // [kBN][LD]
  T* Qs = Vs + kBN * LD;                                 // [2][BMq][LD]
  T* Gs = Qs + 2 * BMq * LD;                             // [2][BMq][LD], dO
  int* cs = reinterpret_cast<int*>(Gs + 2 * BMq * LD);   // [2][BMq] clamped key_start (0 if empty)
  int* ce = cs + 2 * BMq;                                // [2][BMq] clamped key_end (0 if empty)
  float* clse = reinterpret_cast<float*>(ce + 2 * BMq);  // [2][BMq] lse * log2(e), +inf past Lq
  float* cdl = clse + 2 * BMq;                           // [2][BMq] Delta

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int n0 = blockIdx.x * kBN, h = blockIdx.y, b = blockIdx.z;
  const int key_hi = min(n0 + kBN, a.Lk);
  auto key_valid = [&](int j) {
    return j < a.Lk && (a.pad == nullptr || a.pad[int64_t(b) * a.Lk + j]);
  };
  const bool any_key = __syncthreads_or(tid < kBN && key_valid(n0 + tid));
  const int j0 = n0 + warp * 16 + g, j1 = j0 + 8;  // this thread's two key rows
  const bool kv0 = key_valid(j0), kv1 = key_valid(j1);

  const int2* hull = a.hull + int64_t(b) * a.nqt;
  auto next_qt = [&](int qt) {
    for (++qt; qt < a.nqt; ++qt) {
      const int2 hh = hull[qt];
      if (hh.x < key_hi && hh.y > n0) return qt;
    }
    return a.nqt;
  };
  const T* qg = row_ptr<T>(a.q, b, 0, h);
  const T* gg = row_ptr<T>(a.dout, b, 0, h);
  auto load_q = [&](int stage, int qt) {
    const int m0 = qt * BMq;
    T* qd = Qs + stage * BMq * LD;
    T* gd = Gs + stage * BMq * LD;
    for (int c = tid; c < BMq * CH; c += kThreads) {
      const int r = c / CH, col = (c % CH) * 8, i = m0 + r;
      const bool in = i < a.Lq;
      cp_async_16(qd + r * LD + col, qg + int64_t(in ? i : 0) * a.q.sl + col, in);
      cp_async_16(gd + r * LD + col, gg + int64_t(in ? i : 0) * a.dout.sl + col, in);
    }
    if (tid < BMq) {
      const int i = m0 + tid;
      const int2 r = clipped_key_range(a.key_start, a.key_end, b, i, a.Lq, a.Lk);
      float l2 = INFINITY, dl = 0.f;
      if (i < a.Lq) {
        const int64_t row = (int64_t(b) * a.H + h) * a.Lq + i;
        l2 = a.lse[row] * kLog2e;
        dl = a.delta[row];
      }
      cs[stage * BMq + tid] = r.x;
      ce[stage * BMq + tid] = r.y;
      clse[stage * BMq + tid] = l2;
      cdl[stage * BMq + tid] = dl;
    }
  };

  int qt_cur = any_key ? next_qt(-1) : a.nqt;
  if (qt_cur < a.nqt) {
    const T* kg = row_ptr<T>(a.k, b, 0, h);
    const T* vg = row_ptr<T>(a.v, b, 0, h);
    for (int c = tid; c < kBN * CH; c += kThreads) {
      const int r = c / CH, col = (c % CH) * 8, j = n0 + r;
      const bool in = j < a.Lk;
      cp_async_16(Ks + r * LD + col, kg + int64_t(in ? j : 0) * a.k.sl + col, in);
      cp_async_16(Vs + r * LD + col, vg + int64_t(in ? j : 0) * a.v.sl + col, in);
    }
    load_q(0, qt_cur);
  }
  cute::cp_async_fence();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
    for (int c = 0; c < 4; ++c) dk[dt][c] = dv[dt][c] = 0.f;
  const float sl2 = a.scale * kLog2e;
  int stage = 0;

  while (qt_cur < a.nqt) {
    const int qt_next = next_qt(qt_cur);
    if (qt_next < a.nqt) load_q(stage ^ 1, qt_next);
    cute::cp_async_fence();
    cute::cp_async_wait<1>();
    __syncthreads();
    const T* qt_s = Qs + stage * BMq * LD;
    const T* gt_s = Gs + stage * BMq * LD;
    const int* cst = cs + stage * BMq;
    const int* cet = ce + stage * BMq;
    const float* lt = clse + stage * BMq;
    const float* dlt = cdl + stage * BMq;

    float st[BMq / 8][4], dpt[BMq / 8][4];
#pragma unroll
    for (int nt = 0; nt < BMq / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) st[nt][c] = dpt[nt][c] = 0.f;
    warp_mma_nt<T, BMq, D, LD>(st, Ks + warp * 16 * LD, qt_s, lane);   // S^T = K Q^T
    warp_mma_nt<T, BMq, D, LD>(dpt, Vs + warp * 16 * LD, gt_s, lane);  // dP^T = V dO^T
#pragma unroll
    for (int nt = 0; nt < BMq / 8; ++nt) {
      const int m0 = nt * 8 + 2 * t4;  // this thread's columns m0 (c = 0, 2) and m0 + 1 (c = 1, 3)
      const int2 s2 = *reinterpret_cast<const int2*>(cst + m0),
                 e2 = *reinterpret_cast<const int2*>(cet + m0);
      const float2 l2 = *reinterpret_cast<const float2*>(lt + m0),
                   d2 = *reinterpret_cast<const float2*>(dlt + m0);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int j = c < 2 ? j0 : j1, s = c & 1 ? s2.y : s2.x, e = c & 1 ? e2.y : e2.x;
        const bool valid = (c < 2 ? kv0 : kv1) && j >= s && j < e;
        const float p = valid ? exp2f(fmaf(st[nt][c], sl2, -(c & 1 ? l2.y : l2.x))) : 0.f;
        st[nt][c] = p;                                          // P^T
        dpt[nt][c] = p * (dpt[nt][c] - (c & 1 ? d2.y : d2.x));  // dS^T (unscaled)
      }
    }
    warp_mma_rn<T, BMq, D, LD>(dv, st, gt_s, lane);   // dV += P^T dO
    warp_mma_rn<T, BMq, D, LD>(dk, dpt, qt_s, lane);  // dK += dS^T Q
    __syncthreads();  // every warp is done with this stage before it is refilled
    stage ^= 1;
    qt_cur = qt_next;
  }
  cute::cp_async_wait<0>();

  const int r0 = n0 + warp * 16 + g;
  store_rows<T, D>(dk, row_ptr<T>(a.dk, b, 0, h), a.dk.sl, r0, a.Lk, a.scale, a.scale, t4);
  store_rows<T, D>(dv, row_ptr<T>(a.dv, b, 0, h), a.dv.sl, r0, a.Lk, 1.f, 1.f, t4);
}

}  // namespace af2::media_attn_tc
