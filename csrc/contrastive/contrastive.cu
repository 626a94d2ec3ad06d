// Contrastive loss (M positives, M x N hard negatives), CUDA kernels and launchers.
//
// What: the terms, statistics and gradients of contrastive.h on the GPU, O(B) memory.
// How:  two paths, chosen per call (AF2_CONTRASTIVE_KERNEL=simt|tc; default tc where supported):
//   tc   (bf16 / fp16, D % 16 == 0, D <= 1024, 16-byte aligned rows): the score tiles run on
//        tensor cores (contrastive_tc.cuh). Forward: row_lse = an LSE kernel over (audio x
//        text_all) with the own group excluded, col_lse = one over (text x audio_all), then the
//        SIMT pairs_kernel (positives, hard negatives, terms: O(B M N D)). Backward: prep_kernel
//        (per-query coefficients and the dS normaliser), neg_grad_kernel (hard negatives: d_neg,
//        their dS and d(scale), one warp per pair), then four tile kernels: a2t query side
//        (d_audio, plus the negatives' share in its epilogue), a2t key side (d_text_all), t2a
//        query side (d_text), t2a key side (d_audio_all). When the keys are the local tensors
//        themselves (one process: audio_all == audio, text_all == text), two fused kernels
//        (audio rows, text rows) sum both directions and write d_audio / d_text in full, and
//        d_audio_all / d_text_all are zero (autograd adds the two of each): 6 B^2 M D-sized
//        products in all instead of 10.
//   simt (every dtype; the only path for float32 / float64): generic kernels, one warp per
//        row (contrastive_simt.cuh): a warp holds its query row in registers (EPL elements of
//        D per lane, coalesced), walks every key row with a warp-shuffle dot product and keeps
//        an online log-sum-exp (forward) or accumulates its gradient row (backward).
//   In both, query-side gradient kernels own query rows and key-side kernels own key rows, so
//   no gradient row is written by two warps / CTAs; d(scale) is one double, added to with
//   atomicAdd. The logit scale is read on the device (no host sync).
// Assumes: contiguous row-major inputs, D <= 1024.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/cuda_types.cuh"
#include "common/dtype_dispatch.h"
#include "common/warp_rows.cuh"
#include "contrastive/contrastive.h"
#include "contrastive/contrastive_simt.cuh"
#include "contrastive/contrastive_tc.cuh"

namespace af2 {
namespace {

// ---- tensor-core path ---------------------------------------------------------------------

namespace tc = contrastive_tc;

bool aligned16(const void* ptr) {
  return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

bool tc_supported(const ContrastParams& p) {
  constexpr int64_t kMax = (int64_t{1} << 31) - 1;
  return p.D >= 16 && p.D % 16 == 0 && p.D <= 1024 && p.G * p.M <= kMax &&
         p.B * p.M * (p.N > 0 ? p.N : 1) <= kMax && aligned16(p.audio) && aligned16(p.text) &&
         aligned16(p.audio_all) && aligned16(p.text_all) && aligned16(p.neg);
}

// Per-query statistics of the gradient tiles. qa[i] (a2t query = audio row i) = (w_i, row_lse_i
// log2 e) with w_i = sum_j g_a[i, j] exp(row_lse_i - pair_lse_ij); qt[r] (t2a query = text row r) =
// (g_t[r], col_lse_r log2 e). nu_bits = max over all coefficients |w|, |g_a|, |g_t| (float bits:
// non-negative floats order like their bit patterns), the normaliser of the stored dS.
__global__ void prep_kernel(const ContrastParams p, const ContrastBackward g, float2* qa,
                            float2* qt, unsigned* nu_bits) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const float* gt = static_cast<const float*>(g.grad_terms);
  float mx = 0.f;
  if (i < p.B) {
    const float rl = static_cast<const float*>(g.row_lse)[i];
    float w = 0.f;
    for (int64_t j = 0; j < p.M; ++j) {
      const float ga = gt[i * p.M + j];
      if (rl != -INFINITY) w += ga * expf(rl - static_cast<const float*>(g.pair_lse)[i * p.M + j]);
      mx = fmaxf(mx, fabsf(ga));
    }
    qa[i] = make_float2(w, rl * tc::kLog2e);
    mx = fmaxf(mx, fabsf(w));
  }
  if (i < p.B * p.M) {
    const float c = gt[p.B * p.M + i];
    qt[i] = make_float2(c, static_cast<const float*>(g.col_lse)[i] * tc::kLog2e);
    mx = fmaxf(mx, fabsf(c));
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  if (threadIdx.x % 32 == 0 && mx > 0.f) atomicMax(nu_bits, __float_as_uint(mx));
}

// One warp per pair r = (i, j): dh[r, n] = g_a[r] exp(s <a_i, h_rn> - pair_lse_r) (the dS of a
// hard negative), d_neg[r, n] = s dh a_i, and d(scale) += dh <a_i, h_rn>. d_audio's share is added
// by the a2t query-side tile kernel.
template <typename T>
__global__ void neg_grad_kernel(const ContrastParams p, const ContrastBackward g, float* dh) {
  const int64_t r = warp_row();
  const int lane = threadIdx.x % 32;
  if (r >= p.B * p.M) return;
  const int64_t i = r / p.M, D = p.D;
  const float scale = *static_cast<const float*>(p.scale_device);
  const float ga = static_cast<const float*>(g.grad_terms)[r],
              pl = static_cast<const float*>(g.pair_lse)[r];
  const T* a = static_cast<const T*>(p.audio) + i * D;
  double dsc = 0;
  for (int64_t n = 0; n < p.N; ++n) {
    const T* h = static_cast<const T*>(p.neg) + (r * p.N + n) * D;
    float dot = 0.f;
    for (int64_t d = lane; d < D; d += 32) dot += dev_to_acc(a[d]) * dev_to_acc(h[d]);
    dot = warp_sum(dot);
    const float dhv = ga * __expf(scale * dot - pl);
    if (lane == 0) dh[r * p.N + n] = dhv;
    dsc += static_cast<double>(dhv * dot);
    T* dn = static_cast<T*>(g.d_neg) + (r * p.N + n) * D;
    for (int64_t d = lane; d < D; d += 32)
      dn[d] = dev_from_float<T>(scale * dhv * dev_to_acc(a[d]));
  }
  if (lane == 0 && p.N > 0) atomicAdd(g.d_scale, dsc);
}

// One process's whole batch: the gathered keys are the local tensors themselves.
bool single_batch(const ContrastParams& p) {
  return p.audio == p.audio_all && p.text == p.text_all && p.G == p.B && p.offset == 0;
}

tc::TileArgs tile_args(const void* X, int64_t nx, int x_div, int64_t x_add, const void* Y,
                       int64_t ny, int y_div, int64_t y_add, const ContrastParams& p) {
  tc::TileArgs a{};
  a.X = X;
  a.Y = Y;
  a.nx = static_cast<int>(nx);
  a.ny = static_cast<int>(ny);
  a.D = static_cast<int>(p.D);
  a.x_div = x_div;
  a.x_add = static_cast<int>(x_add);
  a.y_div = y_div;
  a.y_add = static_cast<int>(y_add);
  a.scale = static_cast<const float*>(p.scale_device);
  return a;
}

template <typename T, int kMode, int NSC, bool kXRes>
cudaError_t launch_tile_as(const tc::TileArgs& a, cudaStream_t s) {
  const int nch = (a.D + tc::kDK - 1) / tc::kDK;
  const int smem = tc::smem_bytes<T>(kXRes, nch);
  auto kernel = tc::tile_kernel<T, kMode, NSC, kXRes>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const int slices = kMode == tc::kLse || kMode == tc::kLseExcl ? 1 : (nch + NSC - 1) / NSC;
  const dim3 grid(static_cast<unsigned>((a.nx + tc::kBM - 1) / tc::kBM),
                  static_cast<unsigned>(slices));
  kernel<<<grid, tc::kThreads, smem, s>>>(a);
  return cudaGetLastError();
}

// X resident in smem when it fits (D <= 512), streamed with Y otherwise.
template <typename T, int kMode, int NSC>
cudaError_t launch_tile(const tc::TileArgs& a, cudaStream_t s) {
  const int nch = (a.D + tc::kDK - 1) / tc::kDK;
  if (nch <= tc::kMaxResChunks) return launch_tile_as<T, kMode, NSC, true>(a, s);
  if constexpr (NSC == 2 || NSC == 4) {
    return cudaErrorInvalidValue;  // never: NSC 2 / 4 serve D <= 256 only
  } else {
    return launch_tile_as<T, kMode, NSC, false>(a, s);
  }
}

// Gradient modes: NSC 64-column chunks per output slice (the accumulator is NSC x 16 floats a
// thread).
template <typename T, int kMode>
cudaError_t launch_grad_tile(const tc::TileArgs& a, cudaStream_t s) {
  const int nch = (a.D + tc::kDK - 1) / tc::kDK;
  if (nch <= 2) return launch_tile<T, kMode, 2>(a, s);
  if (nch <= 4) return launch_tile<T, kMode, 4>(a, s);
  return launch_tile<T, kMode, 8>(a, s);
}

template <typename T, int EPL>
cudaError_t forward_tc(const ContrastParams& p, const ContrastForward& f, cudaStream_t s) {
  tc::TileArgs rows =
      tile_args(p.audio, p.B, 1, p.offset, p.text_all, p.G * p.M, static_cast<int>(p.M), 0, p);
  rows.lse = static_cast<float*>(f.row_lse);
  cudaError_t err = launch_tile<T, tc::kLseExcl, 1>(rows, s);
  if (err != cudaSuccess) return err;
  tc::TileArgs cols =
      tile_args(p.text, p.B * p.M, static_cast<int>(p.M), p.offset, p.audio_all, p.G, 1, 0, p);
  cols.lse = static_cast<float*>(f.col_lse);
  err = launch_tile<T, tc::kLse, 1>(cols, s);
  if (err != cudaSuccess) return err;
  pairs_kernel<T, float, EPL><<<warp_blocks(p.B * p.M), 32 * kWarps, 0, s>>>(p, f);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_tc(const ContrastParams& p, const ContrastBackward& g, cudaStream_t s) {
  // Scratch: qa (B) and qt (B M) float2, dh (B M N) float, nu (one unsigned).
  const int64_t BM = p.B * p.M, n_dh = BM * p.N;
  const size_t bytes = sizeof(float2) * (p.B + BM) + sizeof(float) * (n_dh + 1) + 16;
  void* scratch = nullptr;
  cudaError_t err = cudaMallocAsync(&scratch, bytes, s);
  if (err != cudaSuccess) return err;
  float2* qa = static_cast<float2*>(scratch);
  float2* qt = qa + p.B;
  float* dh = reinterpret_cast<float*>(qt + BM);
  unsigned* nu = reinterpret_cast<unsigned*>(dh + n_dh);
  err = cudaMemsetAsync(nu, 0, sizeof(unsigned), s);
  auto run = [&]() -> cudaError_t {
    if (err != cudaSuccess) return err;
    prep_kernel<<<static_cast<unsigned>((BM + 255) / 256), 256, 0, s>>>(p, g, qa, qt, nu);
    if (p.N > 0) neg_grad_kernel<T><<<warp_blocks(BM), 32 * kWarps, 0, s>>>(p, g, dh);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    const int M = static_cast<int>(p.M);
    if (single_batch(p)) {
      // audio_all is audio and text_all is text: two fused kernels give d_audio and d_text in full.
      if ((e = cudaMemsetAsync(g.d_audio_all, 0, sizeof(T) * p.G * p.D, s)) != cudaSuccess)
        return e;
      if ((e = cudaMemsetAsync(g.d_text_all, 0, sizeof(T) * p.G * p.M * p.D, s)) != cudaSuccess)
        return e;
      tc::TileArgs fa = tile_args(p.audio, p.B, 1, 0, p.text, BM, M, 0, p);
      fa.qstat_own = qa;
      fa.qstat_other = qt;
      fa.ga = static_cast<const float*>(g.grad_terms);
      fa.pair_lse = static_cast<const float*>(g.pair_lse);
      fa.pos_shift = 0;
      fa.nu_bits = nu;
      fa.out = g.d_audio;
      fa.d_scale = g.d_scale;
      fa.neg = p.neg;
      fa.dh = dh;
      fa.MN = static_cast<int>(p.M * p.N);
      if ((e = launch_grad_tile<T, tc::kFusedAudio>(fa, s)) != cudaSuccess) return e;
      tc::TileArgs ft = tile_args(p.text, BM, M, 0, p.audio, p.B, 1, 0, p);
      ft.qstat_own = qt;
      ft.qstat_other = qa;
      ft.ga = fa.ga;
      ft.pair_lse = fa.pair_lse;
      ft.pos_shift = 0;
      ft.nu_bits = nu;
      ft.out = g.d_text;
      return launch_grad_tile<T, tc::kFusedText>(ft, s);
    }
    // a2t, query side: X = audio (group i + offset), Y = text_all (group k / M) -> d_audio (+
    // negatives).
    tc::TileArgs q = tile_args(p.audio, p.B, 1, p.offset, p.text_all, p.G * p.M, M, 0, p);
    q.qstat_own = qa;
    q.ga = static_cast<const float*>(g.grad_terms);
    q.pair_lse = static_cast<const float*>(g.pair_lse);
    q.pos_shift = static_cast<int>(p.offset * p.M);
    q.nu_bits = nu;
    q.out = g.d_audio;
    q.d_scale = g.d_scale;
    q.neg = p.neg;
    q.dh = dh;
    q.MN = static_cast<int>(p.M * p.N);
    if ((e = launch_grad_tile<T, tc::kA2TQuery>(q, s)) != cudaSuccess) return e;
    // a2t, key side: X = text_all, Y = audio -> d_text_all.
    tc::TileArgs k = tile_args(p.text_all, p.G * p.M, M, 0, p.audio, p.B, 1, p.offset, p);
    k.qstat_other = qa;
    k.ga = q.ga;
    k.pair_lse = q.pair_lse;
    k.pos_shift = q.pos_shift;
    k.nu_bits = nu;
    k.out = g.d_text_all;
    if ((e = launch_grad_tile<T, tc::kA2TKey>(k, s)) != cudaSuccess) return e;
    // t2a, query side: X = text (group r / M + offset), Y = audio_all (group k) -> d_text.
    tc::TileArgs tq = tile_args(p.text, BM, M, p.offset, p.audio_all, p.G, 1, 0, p);
    tq.qstat_own = qt;
    tq.nu_bits = nu;
    tq.out = g.d_text;
    tq.d_scale = g.d_scale;
    if ((e = launch_grad_tile<T, tc::kT2AQuery>(tq, s)) != cudaSuccess) return e;
    // t2a, key side: X = audio_all, Y = text -> d_audio_all.
    tc::TileArgs tk = tile_args(p.audio_all, p.G, 1, 0, p.text, BM, M, p.offset, p);
    tk.qstat_other = qt;
    tk.nu_bits = nu;
    tk.out = g.d_audio_all;
    return launch_grad_tile<T, tc::kT2AKey>(tk, s);
  };
  err = run();
  const cudaError_t freed = cudaFreeAsync(scratch, s);
  return err != cudaSuccess ? err : freed;
}

// The SIMT kernels hold EPL = 4, 16 or 32 elements of D per lane (D <= 128, 512, 1024).
template <typename HostT>
cudaError_t forward(const ContrastParams& p, const ContrastForward& f, cudaStream_t s) {
  using T = typename DeviceType<HostT>::type;
  if constexpr (sizeof(T) == 2) {
    if (p.tensor_cores && tc_supported(p))
      return by_dim<HostT, 4, 16, 32>(
          p.D, [&](auto, auto, auto epl) { return forward_tc<T, decltype(epl)::value>(p, f, s); });
  }
  return by_dim<HostT, 4, 16, 32>(p.D, [&](auto t, auto a, auto epl) {
    return forward_impl<decltype(t), decltype(a), decltype(epl)::value>(p, f, s);
  });
}

template <typename HostT>
cudaError_t backward(const ContrastParams& p, const ContrastBackward& g, cudaStream_t s) {
  using T = typename DeviceType<HostT>::type;
  if constexpr (sizeof(T) == 2) {
    if (p.tensor_cores && tc_supported(p)) return backward_tc<T>(p, g, s);
  }
  return by_dim<HostT, 4, 16, 32>(p.D, [&](auto t, auto a, auto epl) {
    return backward_impl<decltype(t), decltype(a), decltype(epl)::value>(p, g, s);
  });
}

}  // namespace

int contrastive_forward_cuda(DType dtype, const ContrastParams& p, const ContrastForward& f,
                             void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue,
                                         [&](auto t) { return forward<decltype(t)>(p, f, s); }));
}

int contrastive_backward_cuda(DType dtype, const ContrastParams& p, const ContrastBackward& g,
                              void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue,
                                         [&](auto t) { return backward<decltype(t)>(p, g, s); }));
}

}  // namespace af2
