// Contrastive loss (M positives, M x N hard negatives), CPU kernels: the entry points.
//
// What: the terms, statistics and gradients of contrastive.h, never forming the (B M) x G
//       score matrices: extra memory is O((B M + threads * tile) D).
// How:  the score log-sum-exps and gradients come from one of two algorithms
//       (contrastive_cpu_internal.h):
//         one process (keys = the local batch, the common case): a2t and t2a share every score,
//           so one fused tiled pass each way (contrastive_cpu_fused_fwd.cpp / _bwd.cpp);
//         several processes (keys = the gathered batch): two log-sum-exp passes and four
//           gradient passes (contrastive_cpu_gathered.cpp).
//       This file adds the positives and the hard negatives (per-pair dot products, OpenMP over
//       audio rows), the terms, and the conversion of the float accumulators to 16-bit outputs.
// Assumes: contiguous row-major inputs; float accumulation (double for float64 inputs);
//       16-bit inputs are converted to float once per tile / block.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common/dtype_dispatch.h"
#include "contrastive/contrastive_cpu_internal.h"

namespace af2 {
// compiled once per CPU variant (common/isa.h)
AF2_ISA_BEGIN
namespace contrastive_cpu {
namespace {

template <typename A, typename T>
A dot_row(const T* x, const T* y, int64_t D) {
  A acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < D; ++d)
    acc += static_cast<A>(cvt_in(x[d])) * static_cast<A>(cvt_in(y[d]));
  return acc;
}

// The keys are the local tensors themselves (one process): a2t and t2a share every score.
inline bool single_process(const ContrastParams& p) {
  return p.offset == 0 && p.G == p.B && p.audio_all == p.audio && p.text_all == p.text;
}

template <typename T>
void forward(const ContrastParams& p, const ContrastForward& f) {
  using A = typename AccOf<T>::type;
  const auto* audio = static_cast<const T*>(p.audio);
  const auto* text = static_cast<const T*>(p.text);
  const auto* neg = static_cast<const T*>(p.neg);
  const A scale = static_cast<A>(p.scale);
  auto* terms = static_cast<A*>(f.terms);
  const auto* row_lse = static_cast<const A*>(f.row_lse);
  auto* pair_lse = static_cast<A*>(f.pair_lse);
  const auto* col_lse = static_cast<const A*>(f.col_lse);
  const int64_t M = p.M, N = p.N, D = p.D, BM = p.B * p.M;
  if (single_process(p))
    fused_lse<T>(p, f);
  else
    gathered_lse<T>(p, f);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.B; ++i) {
    const T* a = audio + i * D;
    for (int64_t j = 0; j < M; ++j) {
      const A pos = scale * dot_row<A>(a, text + (i * M + j) * D, D);
      A mx = std::max(pos, row_lse[i]);
      std::vector<A> hs(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) {
        hs[n] = scale * dot_row<A>(a, neg + ((i * M + j) * N + n) * D, D);
        mx = std::max(mx, hs[n]);
      }
      A sum = std::exp(pos - mx) + (row_lse[i] == neg_inf<A>() ? A(0) : std::exp(row_lse[i] - mx));
      for (int64_t n = 0; n < N; ++n) sum += std::exp(hs[n] - mx);
      pair_lse[i * M + j] = mx + std::log(sum);
      terms[i * M + j] = pair_lse[i * M + j] - pos;
      terms[BM + i * M + j] = col_lse[i * M + j] - pos;
    }
  }
}

template <typename T>
void backward(const ContrastParams& p, const ContrastBackward& g) {
  using A = typename AccOf<T>::type;
  const auto* audio = static_cast<const T*>(p.audio);
  const auto* neg = static_cast<const T*>(p.neg);
  const auto* gt = static_cast<const A*>(g.grad_terms);
  const auto* row_lse = static_cast<const A*>(g.row_lse);
  const auto* pair_lse = static_cast<const A*>(g.pair_lse);
  const A scale = static_cast<A>(p.scale);
  const int64_t B = p.B, G = p.G, M = p.M, N = p.N, D = p.D, BM = B * M;
  const A* ga = gt;  // (B, M) a2t upstream gradients

  // a2t's weight of the shared "others" part: w_i = sum_j g_a[i, j] exp(row_lse_i - pair_lse_ij)
  std::vector<A> w(B);
  for (int64_t i = 0; i < B; ++i) {
    A acc = 0;
    if (row_lse[i] != neg_inf<A>())
      for (int64_t j = 0; j < M; ++j)
        acc += ga[i * M + j] * std::exp(row_lse[i] - pair_lse[i * M + j]);
    w[i] = acc;
  }

  // fp32 / fp64 gradients accumulate in the outputs themselves; 16-bit ones in float buffers.
  constexpr bool in_place = std::is_same_v<T, A>;
  std::vector<A> d_audio_buf, d_text_buf, d_audio_all, d_text_all;
  auto accumulator = [&](std::vector<A>& buf, void* out, int64_t n) -> A* {
    if constexpr (in_place) {
      A* o = static_cast<A*>(out);
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) o[i] = A(0);
      return o;
    } else {
      buf.assign(static_cast<size_t>(n), A(0));
      return buf.data();
    }
  };
  A* d_audio = accumulator(d_audio_buf, g.d_audio, B * D);
  A* d_text = accumulator(d_text_buf, g.d_text, BM * D);
  double dscale = 0;
  const bool single = single_process(p);
  if (single) {
    // One score family S(i, q) = s <a_i, t_q> carries both terms (fused_backward); the *_all
    // gradients stay 0 (autograd adds them to the same tensors).
    dscale += fused_grads<T>(p, g, w.data(), d_audio, d_text);
  } else {
    d_audio_all.assign(G * D, A(0));
    d_text_all.assign(G * M * D, A(0));
    dscale +=
        gathered_grads<T>(p, g, w.data(), d_audio, d_text, d_audio_all.data(), d_text_all.data());
  }

  // Hard negatives: dH = g_a exp(S_h - pair_lse); d audio += s dH h; d h = s dH a.
  if (N > 0) {
    auto* d_neg = static_cast<T*>(g.d_neg);
#pragma omp parallel for schedule(static) reduction(+ : dscale)
    for (int64_t i = 0; i < B; ++i) {
      const T* a = audio + i * D;
      for (int64_t j = 0; j < M; ++j)
        for (int64_t n = 0; n < N; ++n) {
          const int64_t row = (i * M + j) * N + n;
          const T* h = neg + row * D;
          const A hd = dot_row<A>(a, h, D);
          const A dh = ga[i * M + j] * std::exp(scale * hd - pair_lse[i * M + j]);
          dscale += static_cast<double>(dh * hd);
          for (int64_t d = 0; d < D; ++d) {
            d_audio[i * D + d] += scale * dh * static_cast<A>(cvt_in(h[d]));
            d_neg[row * D + d] = cvt_out<T, A>(scale * dh * static_cast<A>(cvt_in(a[d])));
          }
        }
    }
  }
  auto store = [](const A* src, int64_t n, void* dst) {
    T* out = static_cast<T*>(dst);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = cvt_out<T, A>(src[i]);
  };
  if constexpr (!in_place) {
    store(d_audio, B * D, g.d_audio);
    store(d_text, BM * D, g.d_text);
  }
  if (single) {  // every gradient is in d_audio / d_text already
    std::fill_n(static_cast<T*>(g.d_audio_all), G * D, cvt_out<T, A>(A(0)));
    std::fill_n(static_cast<T*>(g.d_text_all), G * M * D, cvt_out<T, A>(A(0)));
  } else {
    store(d_audio_all.data(), G * D, g.d_audio_all);
    store(d_text_all.data(), G * M * D, g.d_text_all);
  }
  *g.d_scale = dscale;
}

}  // namespace
}  // namespace contrastive_cpu

void contrastive_forward_cpu(DType dtype, const ContrastParams& p, const ContrastForward& f) {
  dispatch_dtype(dtype, [&](auto t) { contrastive_cpu::forward<decltype(t)>(p, f); });
}

void contrastive_backward_cpu(DType dtype, const ContrastParams& p, const ContrastBackward& g) {
  dispatch_dtype(dtype, [&](auto t) { contrastive_cpu::backward<decltype(t)>(p, g); });
}

AF2_ISA_END
}  // namespace af2
