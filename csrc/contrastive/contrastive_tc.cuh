// Contrastive loss on tensor cores (bf16 / fp16 inputs, fp32 accumulation, D % 16 == 0).
//
// What: one kernel template, tile_kernel<T, kMode, NSC>, that streams the score tiles
//       S = X Y^T of an "own" row set X (the rows a CTA owns, nx x D) against an "other" row
//       set Y (ny x D) and either
//         - kLse / kLseExcl: keeps an online log-sum-exp of s * S per own row (the forward's
//           row_lse: X = audio, Y = text_all as (G M) rows, own group excluded; col_lse:
//           X = text as (B M) rows, Y = audio_all), or
//         - the four gradient modes: recomputes dS (the gradient of the loss terms with respect
//           to the scores) from the saved LSEs and accumulates acc = dS @ Y, the own rows'
//           gradient (times s). Query-side modes own the query rows (d_audio from a2t, d_text
//           from t2a; they also sum d(scale)); key-side modes own the key rows (d_text_all
//           from a2t, d_audio_all from t2a) and walk the queries: FlashAttention-2's dQ vs
//           dK/dV split, so every gradient row is written by exactly one CTA (no atomics but
//           one double per CTA for d(scale)).
// How:  CTA = 8 warps, BM = 64 own rows, key tiles of BN = 64 other rows, D in chunks of
//       DK = 64 columns. One pipeline of cp.async stages (two smem buffers, zero-filled past
//       nx / ny / D) runs per key tile: nch = ceil(D / 64) S-chunks (Y chunk, plus the X chunk
//       when X is not resident), then, in gradient modes, nsc <= NSC P-chunks (Y chunk of the
//       CTA's output column slice). For D <= 512 the CTA's 64 X rows are loaded once and stay
//       in smem (kXRes), halving the L2 -> smem traffic of the score sweep.
//         S-chunk: warp w computes S rows [16 (w % 4), +16) x cols [32 (w / 4), +32) of the
//           64 x 64 tile with mma.sync m16n8k16 (CuTe SM80 atoms), X fed by ldmatrix (A
//           fragment rows lane % 16, cols (lane / 16) 8), Y by ldmatrix (non-trans: rows of
//           Y are the n index, like K in attention). Accumulator S[nt][c] of warp (wr, wc):
//           own row 16 wr + g + 8 (c / 2), other col 32 wc + 8 nt + 2 t4 + (c % 2)
//           (g = lane / 4, t4 = lane % 4).
//         After the last S-chunk: LSE modes update (m, l) per own row in log2 units (quad
//           shuffles give the row max of the warp's 32 columns; the two column-half warps
//           are merged through smem at the end); gradient modes turn S into dS, add dS * S to
//           d(scale) (query side, slice 0 only), and store dS / nu as T into smem Ps[64][64]
//           (nu = the largest |per-row gradient coefficient|, so |dS / nu| <= 1: no fp16
//           underflow of the tiny 1 / (2 B M) coefficients).
//         P-chunk u: warp w computes acc[u] rows [32 (w / 4), +32) x cols [16 (w % 4), +16) of
//           the chunk: A = Ps via ldmatrix, B = Y chunk via ldmatrix.trans (Y rows are the k
//           index, like V in attention). acc[u][mt][nt][c]: own row 32 pr + 16 mt + g +
//           8 (c / 2), column (c0 + u) 64 + 16 pc + 8 nt + 2 t4 + (c % 2), pr = w / 4, pc = w % 4.
//       The grid is (ceil(nx / 64), slices): a CTA's output slice holds NSC chunks (NSC 64
//       columns, 512 for D > 256), so D <= 512 needs one slice and D = 768, 1024 recompute S
//       twice (the accumulator of 64 x 512 fp32 is 128 registers per thread).
//       dS of a score d = <x, y> (natural units s d; v = s d log2 e), query q, key k:
//         a2t, k not of q's audio:  w_q exp(s d - row_lse_q),
//                                   w_q = sum_j g_qj exp(row_lse_q - pair_lse_qj)
//         a2t, k = q's caption j:   g_qj (exp(s d - pair_lse_qj) - 1)
//         t2a:                      g_q (exp(s d - col_lse_q) - [k is q's audio])
//       A row's group is row / div + add; a score is "positive" when the two groups match.
//       The per-query (coefficient, lse log2 e) pairs come from prep_kernel in contrastive.cu.
// Assumes: T = __half or __nv_bfloat16; contiguous rows, 16-byte aligned, D % 16 == 0;
//       nx, ny < 2^31; the scale and the statistics are fp32 on the device.
// Status: written and compiled (no spills, sm_80 / sm_90a) without a GPU; the CUDA tests in
//       tests/ops/test_contrastive.py check it against float64 when one is present. Untried
//       tuning, by expected gain: keep the Y tile for the P-chunks (now re-read from L2);
//       BM = 128 rows; a 3-stage pipeline; wgmma on sm_90a.
#pragma once

#include <cstdint>

#include "common/cuda_types.cuh"
#include "common/mma_sm80.cuh"
#include "contrastive/contrastive_tc_args.cuh"

namespace af2::contrastive_tc {

using af2::tc::cp_async_16;
using af2::tc::ldsm_x4;
using af2::tc::ldsm_x4_trans;
using af2::tc::MmaOps;

template <typename T, int kMode, int NSC, bool kXRes>
__global__ void __launch_bounds__(kThreads, 1) tile_kernel(const TileArgs a) {
  constexpr bool kLseMode = kMode == kLse || kMode == kLseExcl;
  constexpr bool kFused = kMode == kFusedAudio || kMode == kFusedText;
  constexpr bool kA2T =
      kMode == kA2TQuery || kMode == kA2TKey || kFused;  // terms whose dS this mode sums
  constexpr bool kT2A = kMode == kT2AQuery || kMode == kT2AKey || kFused;
  constexpr bool kA2TOwnQuery =
      kMode == kA2TQuery || kMode == kFusedAudio;  // a2t query = own row (else other)
  constexpr bool kT2AOwnQuery = kMode == kT2AQuery || kMode == kFusedText;
  constexpr bool kOwnStats = (kA2T && kA2TOwnQuery) || (kT2A && kT2AOwnQuery);
  constexpr bool kOtherStats = (kA2T && !kA2TOwnQuery) || (kT2A && !kT2AOwnQuery);
  constexpr bool kSumsScale = kMode == kA2TQuery || kMode == kT2AQuery || kMode == kFusedAudio;
  constexpr bool kNegatives =
      kMode == kA2TQuery || kMode == kFusedAudio;  // own rows are the local audio
  constexpr int NACC = kLseMode ? 1 : NSC;
  using Ops = MmaOps<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int D = a.D, nch = (D + kDK - 1) / kDK;
  T* Xs = reinterpret_cast<T*>(smem);                  // [kXRes ? nch : 2][kBM * kLD]
  T* Ys = Xs + (kXRes ? nch : 2) * kBM * kLD;          // [2][kBN * kLD]
  T* Ps = Ys + 2 * kBN * kLD;                          // [kBM * kLD]: dS / nu of the current tile
  int* sgid = reinterpret_cast<int*>(Ps + kBM * kLD);  // [2][kBN]: group of each other row
  float2* sq =
      reinterpret_cast<float2*>(sgid + 2 * kBN);  // [2][kBN]: key-side modes, query statistics
  float2* comb = sq + 2 * kBN;                    // [2][kBM]: LSE modes, (m, l) per column half
  double* red = reinterpret_cast<double*>(comb + 2 * kBM);  // [kWarps]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int lm = lane / 8,
            lr = lane % 8;  // ldmatrix: which 8x8 matrix this lane addresses, which row
  const int wr = warp % 4, wc = warp / 4;  // S-chunk warp tile: rows 16 wr, cols 32 wc
  const int pr = warp / 4, pc = warp % 4;  // P-chunk warp tile: rows 32 pr, cols 16 pc
  const int x0 = blockIdx.x * kBM;
  const int c0 = blockIdx.y * NSC;  // first column chunk of this CTA's output slice
  const int nsc = kLseMode ? 0 : min(NSC, nch - c0);
  const int spt = nch + nsc;  // pipeline steps per key tile
  const int ntiles = (a.ny + kBN - 1) / kBN, total = ntiles * spt;
  const T* X = static_cast<const T*>(a.X);
  const T* Y = static_cast<const T*>(a.Y);
  const float scale = *a.scale, sl2 = scale * kLog2e;
  float nu = 1.f;
  if constexpr (!kLseMode) {
    nu = __uint_as_float(*a.nu_bits);
    if (!(nu > 0.f)) nu = 1.f;
  }
  const float inv_nu = 1.f / nu;

  // Own rows of this thread in the S layout: 16 wr + g and + 8.
  int own_row[2], own_gid[2];
  bool own_ok[2];
  float2 own_q[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    own_row[h] = x0 + 16 * wr + g + 8 * h;
    own_ok[h] = own_row[h] < a.nx;
    own_gid[h] = own_ok[h] ? own_row[h] / a.x_div + a.x_add : -2;
    own_q[h] = make_float2(0.f, 0.f);
    if constexpr (!kLseMode && kOwnStats) {
      if (own_ok[h]) own_q[h] = a.qstat_own[own_row[h]];
    }
  }

  // Stage i of the pipeline: S-chunk j < nch of its tile (X and Y columns [64 j, +64)) or
  // P-chunk j - nch (Y columns of chunk c0 + j - nch) into buffer i % 2.
  auto issue = [&](int i) {
    const int tile = i / spt, j = i - tile * spt, buf = i & 1, t0 = tile * kBN;
    T* xd = Xs + buf * kBM * kLD;
    T* yd = Ys + buf * kBN * kLD;
    const bool s_chunk = j < nch;
    const int col0 = (s_chunk ? j : c0 + j - nch) * kDK;
#pragma unroll
    for (int rep = 0; rep < (kBN * kDK / 8) / kThreads;
         ++rep) {  // 512 16-byte pieces: 2 per thread
      const int c = tid + rep * kThreads, r = c / (kDK / 8), cc = (c % (kDK / 8)) * 8,
                col = col0 + cc;
      const bool oky = t0 + r < a.ny && col < D;
      cp_async_16(yd + r * kLD + cc, Y + (oky ? int64_t(t0 + r) * D + col : 0), oky);
      if (!kXRes && s_chunk) {
        const bool okx = x0 + r < a.nx && col < D;
        cp_async_16(xd + r * kLD + cc, X + (okx ? int64_t(x0 + r) * D + col : 0), okx);
      }
    }
    if (j == 0 && tid < kBN) {  // this tile's other rows: group and (key-side) query statistics
      const int r = t0 + tid, sb = (tile & 1) * kBN;
      const bool ok = r < a.ny;
      sgid[sb + tid] = ok ? r / a.y_div + a.y_add : -1;
      if constexpr (!kLseMode && kOtherStats)
        sq[sb + tid] = ok ? a.qstat_other[r] : make_float2(0.f, 0.f);
    }
  };

  float S[4][4];
  float acc[NACC][2][2][4];
#pragma unroll
  for (int u = 0; u < NACC; ++u)
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
        acc[u][mt][nt][0] = acc[u][mt][nt][1] = acc[u][mt][nt][2] = acc[u][mt][nt][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};
  double dsc = 0.0;

  if constexpr (kXRes) {  // all of X, once; it completes with stage 0's group
    for (int c = tid; c < nch * kBM * (kDK / 8); c += kThreads) {
      const int ch = c / (kBM * (kDK / 8)), r = (c / (kDK / 8)) % kBM, cc = (c % (kDK / 8)) * 8,
                col = ch * kDK + cc;
      const bool okx = x0 + r < a.nx && col < D;
      cp_async_16(Xs + (ch * kBM + r) * kLD + cc, X + (okx ? int64_t(x0 + r) * D + col : 0), okx);
    }
  }
  if (total > 0) issue(0);
  cute::cp_async_fence();
  for (int i = 0; i < total; ++i) {
    if (i + 1 < total) issue(i + 1);
    cute::cp_async_fence();
    cute::cp_async_wait<1>();
    __syncthreads();
    const int tile = i / spt, j = i - tile * spt, buf = i & 1, t0 = tile * kBN;
    const T* xs = Xs + (kXRes ? j : buf) * kBM * kLD;  // S-chunk steps only
    const T* ys = Ys + buf * kBN * kLD;
    if (j < nch) {
      if (j == 0) {
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) S[nt][0] = S[nt][1] = S[nt][2] = S[nt][3] = 0.f;
      }
#pragma unroll
      for (int kk = 0; kk < kDK / 16; ++kk) {
        if (j * kDK + kk * 16 < D) {  // 16-column steps past D are zero: skip them
          uint32_t xa[4];
          ldsm_x4(xs + (16 * wr + lane % 16) * kLD + kk * 16 + (lane / 16) * 8, xa);
#pragma unroll
          for (int np = 0; np < 2; ++np) {
            uint32_t yb[4];
            ldsm_x4(ys + (32 * wc + 16 * np + lr + (lm / 2) * 8) * kLD + kk * 16 + (lm % 2) * 8,
                    yb);
            Ops::mma(S[2 * np], xa, yb[0], yb[1]);
            Ops::mma(S[2 * np + 1], xa, yb[2], yb[3]);
          }
        }
      }
      if (j == nch - 1) {  // the tile's scores are complete
        const int sb = (tile & 1) * kBN;
        if constexpr (kLseMode) {
          float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
          for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const int h = c / 2, oc = 32 * wc + 8 * nt + 2 * t4 + (c % 2);
              bool ok = t0 + oc < a.ny;
              if constexpr (kMode == kLseExcl) ok = ok && sgid[sb + oc] != own_gid[h];
              S[nt][c] = ok ? S[nt][c] * sl2 : -INFINITY;
              mx[h] = fmaxf(mx[h], S[nt][c]);
            }
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            const float mn = fmaxf(m_run[h], mx[h]), mu = mn == -INFINITY ? 0.f : mn;
            float ls = 0.f;
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
              ls += exp2f(S[nt][2 * h] - mu) + exp2f(S[nt][2 * h + 1] - mu);
            l_run[h] = l_run[h] * exp2f(m_run[h] - mu) + ls;
            m_run[h] = mn;
          }
        } else {
          float part = 0.f;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              const int h = c / 2, oc = 32 * wc + 8 * nt + 2 * t4 + (c % 2);
              const bool ok = own_ok[h] && t0 + oc < a.ny, pos = own_gid[h] == sgid[sb + oc];
              const float d = S[nt][c], v = d * sl2;
              float ds = 0.f;
              if (ok) {
                if constexpr (kA2T) {
                  if (pos) {  // a2t's own positive: the pair (query, key row) itself
                    const int r = (kA2TOwnQuery ? t0 + oc : own_row[h]) - a.pos_shift;
                    ds += a.ga[r] * (exp2f(v - a.pair_lse[r] * kLog2e) - 1.f);
                  } else {
                    const float2 q = kA2TOwnQuery ? own_q[h] : sq[sb + oc];
                    ds += q.x * exp2f(v - q.y);
                  }
                }
                if constexpr (kT2A) {
                  const float2 q = kT2AOwnQuery ? own_q[h] : sq[sb + oc];
                  ds += q.x * exp2f(v - q.y) - (pos ? q.x : 0.f);
                }
              }
              part += ds * d;
              S[nt][c] = ds * inv_nu;
            }
          if (kSumsScale && blockIdx.y == 0) dsc += static_cast<double>(part);
          T* prow = Ps + (16 * wr + g) * kLD + 32 * wc + 2 * t4;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            *reinterpret_cast<uint32_t*>(prow + 8 * nt) = Ops::pack(S[nt][0], S[nt][1]);
            *reinterpret_cast<uint32_t*>(prow + 8 * kLD + 8 * nt) = Ops::pack(S[nt][2], S[nt][3]);
          }
        }
      }
    } else if constexpr (!kLseMode) {  // P-chunk u: acc[u] += P @ Y[:, chunk c0 + u]
      const int u = j - nch;
#pragma unroll
      for (int uu = 0; uu < NACC; ++uu) {
        if (uu != u) continue;
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          uint32_t pa[2][4], yb[4];
#pragma unroll
          for (int mt = 0; mt < 2; ++mt)
            ldsm_x4(Ps + (32 * pr + 16 * mt + lane % 16) * kLD + kk * 16 + (lane / 16) * 8, pa[mt]);
          ldsm_x4_trans(ys + (kk * 16 + lr + (lm % 2) * 8) * kLD + 16 * pc + (lm / 2) * 8, yb);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            Ops::mma(acc[uu][mt][0], pa[mt], yb[0], yb[1]);
            Ops::mma(acc[uu][mt][1], pa[mt], yb[2], yb[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer (and with Ps) before it is refilled
  }
  cute::cp_async_wait<0>();

  if constexpr (kLseMode) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
      l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
    }
    if (t4 == 0) {
      comb[wc * kBM + 16 * wr + g] = make_float2(m_run[0], l_run[0]);
      comb[wc * kBM + 16 * wr + g + 8] = make_float2(m_run[1], l_run[1]);
    }
    __syncthreads();
    if (tid < kBM && x0 + tid < a.nx) {
      const float2 p0 = comb[tid], p1 = comb[kBM + tid];
      const float mm = fmaxf(p0.x, p1.x);
      float lse = -INFINITY;
      if (mm != -INFINITY)
        lse = (mm + log2f(p0.y * exp2f(p0.x - mm) + p1.y * exp2f(p1.x - mm))) * kLn2;
      a.lse[x0 + tid] = lse;
    }
  } else {
    T* out = static_cast<T*>(a.out);
    const float mul = scale * nu;
#pragma unroll
    for (int u = 0; u < NACC; ++u) {
      if (u >= nsc) continue;
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = x0 + 32 * pr + 16 * mt + g + 8 * h;
            const int col = (c0 + u) * kDK + 16 * pc + 8 * nt + 2 * t4;
            if (row >= a.nx || col >= D) continue;
            float v0 = acc[u][mt][nt][2 * h] * mul, v1 = acc[u][mt][nt][2 * h + 1] * mul;
            if constexpr (kNegatives) {  // the hard negatives of audio row `row`
              if (a.MN > 0) {
                const T* hp = static_cast<const T*>(a.neg) + int64_t(row) * a.MN * D + col;
                const float* dh = a.dh + int64_t(row) * a.MN;
                float e0 = 0.f, e1 = 0.f;
                for (int n = 0; n < a.MN; ++n) {
                  const float w = dh[n];
                  e0 += w * dev_to_acc(hp[int64_t(n) * D]);
                  e1 += w * dev_to_acc(hp[int64_t(n) * D + 1]);
                }
                v0 += scale * e0;
                v1 += scale * e1;
              }
            }
            *reinterpret_cast<uint32_t*>(out + int64_t(row) * D + col) = Ops::pack(v0, v1);
          }
    }
    if constexpr (kSumsScale) {
#pragma unroll
      for (int off = 16; off > 0; off /= 2) dsc += __shfl_xor_sync(0xffffffffu, dsc, off);
      if (lane == 0) red[warp] = dsc;
      __syncthreads();
      if (tid == 0 && blockIdx.y == 0) {
        double s = 0.0;
        for (int w = 0; w < kWarps; ++w) s += red[w];
        atomicAdd(a.d_scale, s);
      }
    }
  }
}

}  // namespace af2::contrastive_tc
