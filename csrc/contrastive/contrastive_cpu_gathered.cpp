// Contrastive loss, CPU passes of the several-process case (keys = the batch gathered across
// processes: audio_all (G, D), text_all (G, M, D); local row i is global row i + offset).
//
// What: row_lse / col_lse (forward) and the score gradients of both directions (backward) of
//       contrastive.h, never forming the (B M) x G score matrices.
// How:  two log-sum-exp passes (a2t: audio rows against all texts but their own block; t2a:
//       text rows against all audio), and four gradient passes: query side (d_audio, d_text;
//       OpenMP over blocks of kRB query rows) and key side (d_text_all, d_audio_all; OpenMP over
//       tiles of kKB key rows, so every gradient row is written by one thread). Each key set is
//       converted to the compute type and its tiles transposed once per pass (Packed); scores
//       come from mk::scores_tile, gradients from mk::axpy_rows.
// Assumes: contiguous row-major inputs; float accumulation (double for float64).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/dtype_dispatch.h"
#include "common/microkernels.h"
#include "common/vexp.h"
#include "contrastive/contrastive_cpu_internal.h"

namespace af2 {
// compiled once per CPU variant (common/isa.h)
AF2_ISA_BEGIN
namespace contrastive_cpu {
namespace {

constexpr int64_t kRB = 32;  // query rows per block
constexpr int64_t kKB = 64;  // keys per tile

template <typename T, typename A>
void load_rows_transposed(const T* src, int64_t r0, int64_t n, int64_t D, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* s = src + (r0 + r) * D;
    for (int64_t d = 0; d < D; ++d) dst[d * kKB + r] = cvt_in(s[d]);
  }
}

// A (rows, D) matrix converted to the compute type once per pass: row-major rows for the
// axpy products, and kKB-row tiles stored transposed (D x kKB) for the score products, so no
// tile is converted or transposed more than once. O(rows * D) memory.
template <typename A>
struct Packed {
  std::vector<A> rows, tiles;
  int64_t n = 0, D = 0;
  const A* row(int64_t r) const { return rows.data() + r * D; }
  const A* tile_t(int64_t k0) const { return tiles.data() + (k0 / kKB) * D * kKB; }
};

template <typename T, typename A>
Packed<A> pack(const T* src, int64_t n, int64_t D, bool with_tiles) {
  Packed<A> p;
  p.n = n;
  p.D = D;
  p.rows.resize(static_cast<size_t>(n * D));
  const int64_t ntiles = (n + kKB - 1) / kKB;
  if (with_tiles) p.tiles.assign(static_cast<size_t>(ntiles * D * kKB), A(0));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < ntiles; ++t) {
    const int64_t r0 = t * kKB, kb = std::min(kKB, n - r0);
    load_rows<T, A>(src, r0, kb, D, p.rows.data() + r0 * D);
    if (with_tiles) load_rows_transposed<T, A>(src, r0, kb, D, p.tiles.data() + t * D * kKB);
  }
  return p;
}

// lse[q] = log sum_{k not in excluded(q)} exp(scale <Q_q, K_k>), -inf when no key is left.
template <typename T, typename A, typename Excluded>
void lse_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale, Excluded excluded,
              A* lse) {
  const int64_t blocks = (nq + kRB - 1) / kRB;
  const Packed<A> keys = pack<T, A>(K, nk, D, true);
#pragma omp parallel
  {
    std::vector<A> Qb(kRB * D), S(kRB * kKB), m(kRB), l(kRB);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t q0 = blk * kRB, n = std::min(kRB, nq - q0);
      load_rows<T, A>(Q, q0, n, D, Qb.data());
      std::fill(m.begin(), m.end(), neg_inf<A>());
      std::fill(l.begin(), l.end(), A(0));
      for (int64_t k0 = 0; k0 < nk; k0 += kKB) {
        const int64_t kb = std::min(kKB, nk - k0);
        mk::scores_tile<A, kKB>(Qb.data(), keys.tile_t(k0), n, D, S.data());
        for (int64_t r = 0; r < n; ++r) {
          const auto [lo, hi] = excluded(q0 + r);
          A* s = S.data() + r * kKB;
          A mx = neg_inf<A>();
          for (int64_t j = 0; j < kKB; ++j) {
            const int64_t k = k0 + j;
            s[j] = (j < kb && (k < lo || k >= hi)) ? s[j] * scale : neg_inf<A>();
            mx = std::max(mx, s[j]);
          }
          if (mx == neg_inf<A>()) continue;
          const A m_new = std::max(m[r], mx);
          A sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < kKB; ++j) sum += vexp(s[j] - m_new);
          l[r] = l[r] * vexp(m[r] - m_new) + sum;
          m[r] = m_new;
        }
      }
      for (int64_t r = 0; r < n; ++r)
        lse[q0 + r] = l[r] > A(0) ? m[r] + std::log(l[r]) : neg_inf<A>();
    }
  }
}

// Gradient products of one score family S = scale <Q_q, K_k>. coef(q, k0, kb, row) turns a
// row of raw dots <Q_q, K_k> (k = k0 .. k0 + kKB) into dS in place (0 for k >= k0 + kb) and
// returns sum dS <Q_q, K_k> (the logit-scale gradient):
//   query side: dQ[q] = scale sum_k dS K_k (OpenMP over query blocks), returns sum dS <Q_q, K_k>;
//   key side:   dK[k] = scale sum_q dS Q_q (OpenMP over key tiles).
template <typename T, typename A, typename Coef>
double grad_query_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale,
                       Coef coef, A* dQ) {
  const int64_t blocks = (nq + kRB - 1) / kRB;
  const Packed<A> keys = pack<T, A>(K, nk, D, true);
  double dscale = 0;
#pragma omp parallel reduction(+ : dscale)
  {
    std::vector<A> Qb(kRB * D), S(kRB * kKB), dQb(kRB * D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t q0 = blk * kRB, n = std::min(kRB, nq - q0);
      load_rows<T, A>(Q, q0, n, D, Qb.data());
      std::fill(dQb.begin(), dQb.end(), A(0));
      for (int64_t k0 = 0; k0 < nk; k0 += kKB) {
        const int64_t kb = std::min(kKB, nk - k0);
        mk::scores_tile<A, kKB>(Qb.data(), keys.tile_t(k0), n, D, S.data());
        for (int64_t r = 0; r < n; ++r)
          dscale += static_cast<double>(coef(q0 + r, k0, kb, S.data() + r * kKB));
        mk::axpy_rows<A>(dQb.data(), S.data(), kKB, 1, keys.row(k0), n, kb, D);
      }
      for (int64_t i = 0; i < n * D; ++i) dQ[q0 * D + i] += scale * dQb[i];
    }
  }
  return dscale;
}

template <typename T, typename A, typename Coef>
void grad_key_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale, Coef coef,
                   A* dK) {
  const int64_t tiles = (nk + kKB - 1) / kKB;
  const Packed<A> keys = pack<T, A>(K, nk, D, true), queries = pack<T, A>(Q, nq, D, false);
#pragma omp parallel
  {
    std::vector<A> S(kRB * kKB), dKt(kKB * D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t k0 = t * kKB, kb = std::min(kKB, nk - k0);
      std::fill(dKt.begin(), dKt.end(), A(0));
      for (int64_t q0 = 0; q0 < nq; q0 += kRB) {
        const int64_t n = std::min(kRB, nq - q0);
        mk::scores_tile<A, kKB>(queries.row(q0), keys.tile_t(k0), n, D, S.data());
        for (int64_t r = 0; r < n; ++r) coef(q0 + r, k0, kb, S.data() + r * kKB);
        mk::axpy_rows<A>(dKt.data(), S.data(), 1, kKB, queries.row(q0), kb, n, D);
      }
      for (int64_t i = 0; i < kb * D; ++i) dK[k0 * D + i] += scale * dKt[i];
    }
  }
}

}  // namespace

template <typename T>
void gathered_lse(const ContrastParams& p, const ContrastForward& f) {
  using A = Acc<T>;
  const int64_t M = p.M;
  lse_pass<T, A>(
      static_cast<const T*>(p.audio), p.B, static_cast<const T*>(p.text_all), p.G * M, p.D,
      static_cast<A>(p.scale),
      [&](int64_t i) {
        return std::pair<int64_t, int64_t>{(i + p.offset) * M, (i + p.offset + 1) * M};
      },
      static_cast<A*>(f.row_lse));
  lse_pass<T, A>(
      static_cast<const T*>(p.text), p.B * M, static_cast<const T*>(p.audio_all), p.G, p.D,
      static_cast<A>(p.scale), [](int64_t) { return std::pair<int64_t, int64_t>{0, 0}; },
      static_cast<A*>(f.col_lse));
}

template <typename T>
double gathered_grads(const ContrastParams& p, const ContrastBackward& g, const Acc<T>* w,
                      Acc<T>* d_audio, Acc<T>* d_text, Acc<T>* d_audio_all, Acc<T>* d_text_all) {
  using A = Acc<T>;
  const auto* audio = static_cast<const T*>(p.audio);
  const auto* text = static_cast<const T*>(p.text);
  const auto* audio_all = static_cast<const T*>(p.audio_all);
  const auto* text_all = static_cast<const T*>(p.text_all);
  const auto* row_lse = static_cast<const A*>(g.row_lse);
  const auto* pair_lse = static_cast<const A*>(g.pair_lse);
  const auto* col_lse = static_cast<const A*>(g.col_lse);
  const A scale = static_cast<A>(p.scale);
  const int64_t B = p.B, G = p.G, M = p.M, D = p.D, BM = B * M, off = p.offset;
  const A* ga = static_cast<const A*>(g.grad_terms);  // (B, M) a2t upstream gradients
  const A* gtt = ga + BM;                             // (B, M) t2a upstream gradients
  // a2t: dS(i, q) = own ? g_a[i, j] (exp(S - pair_lse) - 1) : w_i exp(S - row_lse_i)
  auto coef_a2t = [&](int64_t i, int64_t k0, int64_t kb, A* row) -> A {
    const int64_t own_lo = (i + off) * M - k0, own_hi = own_lo + M;  // own block, tile-relative
    const A wi = w[i], rl = row_lse[i];
    const A* gai = ga + i * M;
    const A* pli = pair_lse + i * M;
    A acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < kKB; ++j) {
      const bool own = j >= own_lo && j < own_hi;
      const int64_t jj = own ? j - own_lo : 0;
      const A s = row[j] * scale;
      const A other = wi * vexp(s - rl);
      const A mine = gai[jj] * (vexp(s - pli[jj]) - A(1));
      const A ds = j < kb ? (own ? mine : other) : A(0);
      acc += ds * row[j];
      row[j] = ds;
    }
    return acc;
  };
  // t2a: dS(p, k) = g_t[p] (exp(S - col_lse_p) - [k is p's audio])
  auto coef_t2a = [&](int64_t q, int64_t k0, int64_t kb, A* row) -> A {
    const int64_t hit = q / M + off - k0;
    const A gq = gtt[q], cl = col_lse[q];
    A acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < kKB; ++j) {
      const A ds = j < kb ? gq * (vexp(row[j] * scale - cl) - (j == hit ? A(1) : A(0))) : A(0);
      acc += ds * row[j];
      row[j] = ds;
    }
    return acc;
  };
  double dscale = grad_query_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_audio);
  grad_key_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_text_all);
  dscale += grad_query_pass<T, A>(text, BM, audio_all, G, D, scale, coef_t2a, d_text);
  grad_key_pass<T, A>(text, BM, audio_all, G, D, scale, coef_t2a, d_audio_all);
  return dscale;
}

#define AF2_INSTANTIATE(T)                                                                         \
  template void gathered_lse<T>(const ContrastParams&, const ContrastForward&);                    \
  template double gathered_grads<T>(const ContrastParams&, const ContrastBackward&, const Acc<T>*, \
                                    Acc<T>*, Acc<T>*, Acc<T>*, Acc<T>*);
AF2_FOR_EACH_DTYPE(AF2_INSTANTIATE)
#undef AF2_INSTANTIATE

}  // namespace contrastive_cpu
AF2_ISA_END
}  // namespace af2
