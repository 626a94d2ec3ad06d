// Contrastive loss (M positives, M x N hard negatives), CPU kernels.
//
// What: the terms, statistics and gradients of contrastive.h, never forming the (B M) x G
//       score matrices: memory is O(B (M N + 1) D).
// How:  every score is a tile of a query block (kRB rows) against a key tile (kKB rows),
//       computed by the register-blocked micro-kernel mk::scores_tile; each pass first
//       converts its keys once into float rows and transposed tiles (Packed, O(B) memory). Forward: two log-sum-exp
//       passes with an online max/sum (a2t: audio rows against all texts except their own
//       block; t2a: text rows against all audio), then the hard-negative dots and the per-pair
//       normalisers, OpenMP over query blocks. Backward: dS for any (query, key) pair follows
//       from the saved log-sum-exps alone, so each of the four gradient products
//       (d audio, d text_all from a2t; d text, d audio_all from t2a) is one more tiled pass:
//       query-side passes run OpenMP over query blocks, key-side passes over key tiles, so
//       every thread owns the rows it writes (no atomics, deterministic). With one process
//       (keys = the local batch) a2t and t2a share every score: one forward pass gives both
//       log-sum-exps and two backward passes give every gradient.
// Assumes: contiguous row-major inputs; float accumulation (double for float64 inputs).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/microkernels.h"
#include "common/vexp.h"
#include "contrastive/contrastive.h"

namespace af2 {
namespace {

constexpr int64_t kRB = 32;  // query rows per block
constexpr int64_t kKB = 64;  // keys per tile

template <typename T, typename A>
void load_rows(const T* src, int64_t r0, int64_t n, int64_t D, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* s = src + (r0 + r) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) dst[r * D + d] = cvt_in(s[d]);
  }
}

template <typename T, typename A>
void load_rows_transposed(const T* src, int64_t r0, int64_t n, int64_t D, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* s = src + (r0 + r) * D;
    for (int64_t d = 0; d < D; ++d) dst[d * kKB + r] = cvt_in(s[d]);
  }
}

template <typename A> inline A neg_inf() { return -std::numeric_limits<A>::infinity(); }

// A (rows, D) matrix converted to the compute type once per pass: row-major rows for the
// axpy products, and kKB-row tiles stored transposed (D x kKB) for the score products, so no
// tile is converted or transposed more than once. O(rows * D) memory.
template <typename A> struct Packed {
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
void lse_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale, Excluded excluded, A* lse) {
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
      for (int64_t r = 0; r < n; ++r) lse[q0 + r] = l[r] > A(0) ? m[r] + std::log(l[r]) : neg_inf<A>();
    }
  }
}

// Single process (keys = the local batch): one pass over S = scale <a_i, t_q> gives both the
// a2t row log-sum-exps (without row i's own M captions) and the t2a column log-sum-exps. Each
// thread keeps running column maxima/sums for the rows it saw; they are merged at the end.
template <typename T, typename A>
void lse_rows_and_cols(const T* audio, int64_t B, const T* text, int64_t M, int64_t D, A scale, A* row_lse,
                       A* col_lse) {
  const int64_t nk = B * M, blocks = (B + kRB - 1) / kRB;
  const Packed<A> keys = pack<T, A>(text, nk, D, true);
  std::vector<A> cm(nk, neg_inf<A>()), cl(nk, A(0));
#pragma omp parallel
  {
    std::vector<A> Qb(kRB * D), S(kRB * kKB), m(kRB), l(kRB), tm(nk, neg_inf<A>()), tl(nk, A(0));
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t q0 = blk * kRB, n = std::min(kRB, B - q0);
      load_rows<T, A>(audio, q0, n, D, Qb.data());
      std::fill(m.begin(), m.end(), neg_inf<A>());
      std::fill(l.begin(), l.end(), A(0));
      for (int64_t k0 = 0; k0 < nk; k0 += kKB) {
        const int64_t kb = std::min(kKB, nk - k0);
        mk::scores_tile<A, kKB>(Qb.data(), keys.tile_t(k0), n, D, S.data());
        for (int64_t r = 0; r < n; ++r) {
          A* srow = S.data() + r * kKB;
          const int64_t own_lo = (q0 + r) * M - k0, own_hi = own_lo + M;
          A mx = neg_inf<A>();
          for (int64_t j = 0; j < kb; ++j) {
            const A sv = srow[j] * scale;
            srow[j] = sv;
            // column (t2a) state of text row k0 + j: every audio row counts
            const int64_t c = k0 + j;
            if (sv > tm[c]) {
              tl[c] = tl[c] * vexp(tm[c] - sv) + A(1);
              tm[c] = sv;
            } else {
              tl[c] += vexp(sv - tm[c]);
            }
            if (j < own_lo || j >= own_hi) mx = std::max(mx, sv);
          }
          if (mx == neg_inf<A>()) continue;
          const A m_new = std::max(m[r], mx);
          A sum = 0;
          for (int64_t j = 0; j < kb; ++j)
            if (j < own_lo || j >= own_hi) sum += vexp(srow[j] - m_new);
          l[r] = l[r] * vexp(m[r] - m_new) + sum;
          m[r] = m_new;
        }
      }
      for (int64_t r = 0; r < n; ++r) row_lse[q0 + r] = l[r] > A(0) ? m[r] + std::log(l[r]) : neg_inf<A>();
    }
#pragma omp critical
    for (int64_t c = 0; c < nk; ++c) {
      if (tl[c] == A(0)) continue;
      const A mm = std::max(cm[c], tm[c]);
      cl[c] = cl[c] * vexp(cm[c] - mm) + tl[c] * vexp(tm[c] - mm);
      cm[c] = mm;
    }
  }
  for (int64_t c = 0; c < nk; ++c) col_lse[c] = cm[c] + std::log(cl[c]);
}

// Gradient products of one score family S = scale <Q_q, K_k>. coef(q, k0, kb, row) turns a
// row of raw dots <Q_q, K_k> (k = k0 .. k0 + kKB) into dS in place (0 for k >= k0 + kb) and
// returns sum dS <Q_q, K_k> (the logit-scale gradient):
//   query side: dQ[q] = scale sum_k dS K_k (OpenMP over query blocks), returns sum dS <Q_q, K_k>;
//   key side:   dK[k] = scale sum_q dS Q_q (OpenMP over key tiles).
template <typename T, typename A, typename Coef>
double grad_query_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale, Coef coef, A* dQ) {
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
        for (int64_t r = 0; r < n; ++r) dscale += static_cast<double>(coef(q0 + r, k0, kb, S.data() + r * kKB));
        mk::axpy_rows<A>(dQb.data(), S.data(), kKB, 1, keys.row(k0), n, kb, D);
      }
      for (int64_t i = 0; i < n * D; ++i) dQ[q0 * D + i] += scale * dQb[i];
    }
  }
  return dscale;
}

template <typename T, typename A, typename Coef>
void grad_key_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale, Coef coef, A* dK) {
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

template <typename A, typename T>
A dot_row(const T* x, const T* y, int64_t D) {
  A acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < D; ++d) acc += static_cast<A>(cvt_in(x[d])) * static_cast<A>(cvt_in(y[d]));
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
  auto* row_lse = static_cast<A*>(f.row_lse);
  auto* pair_lse = static_cast<A*>(f.pair_lse);
  auto* col_lse = static_cast<A*>(f.col_lse);
  const int64_t M = p.M, N = p.N, D = p.D, BM = p.B * p.M;
  if (single_process(p)) {
    lse_rows_and_cols<T, A>(audio, p.B, text, M, D, scale, row_lse, col_lse);
  } else {
    lse_pass<T, A>(audio, p.B, static_cast<const T*>(p.text_all), p.G * M, D, scale,
                   [&](int64_t i) { return std::pair<int64_t, int64_t>{(i + p.offset) * M, (i + p.offset + 1) * M}; },
                   row_lse);
    lse_pass<T, A>(text, BM, static_cast<const T*>(p.audio_all), p.G, D, scale,
                   [](int64_t) { return std::pair<int64_t, int64_t>{0, 0}; }, col_lse);
  }
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
  const auto* text = static_cast<const T*>(p.text);
  const auto* audio_all = static_cast<const T*>(p.audio_all);
  const auto* text_all = static_cast<const T*>(p.text_all);
  const auto* neg = static_cast<const T*>(p.neg);
  const auto* gt = static_cast<const A*>(g.grad_terms);
  const auto* row_lse = static_cast<const A*>(g.row_lse);
  const auto* pair_lse = static_cast<const A*>(g.pair_lse);
  const auto* col_lse = static_cast<const A*>(g.col_lse);
  const A scale = static_cast<A>(p.scale);
  const int64_t B = p.B, G = p.G, M = p.M, N = p.N, D = p.D, BM = B * M, off = p.offset;
  const A* ga = gt;       // (B, M) a2t upstream gradients
  const A* gtt = gt + BM;  // (B, M) t2a upstream gradients

  // a2t: dS(i, q) = own ? g_a[i, j] (exp(S - pair_lse) - 1) : w_i exp(S - row_lse_i)
  std::vector<A> w(B);
  for (int64_t i = 0; i < B; ++i) {
    A acc = 0;
    if (row_lse[i] != neg_inf<A>())
      for (int64_t j = 0; j < M; ++j) acc += ga[i * M + j] * std::exp(row_lse[i] - pair_lse[i * M + j]);
    w[i] = acc;
  }
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

  std::vector<A> d_audio(B * D, A(0)), d_text(BM * D, A(0)), d_audio_all, d_text_all;
  double dscale = 0;
  const bool single = single_process(p);
  if (single) {
    // One score family S(i, q) = s <a_i, t_q> carries both terms: dS = dS_a2t + dS_t2a, so two
    // passes (audio side, text side) give every gradient; the *_all gradients stay 0 (autograd
    // adds them to the same tensors).
    auto coef_both = [&](int64_t i, int64_t k0, int64_t kb, A* row) -> A {
      const int64_t own_lo = i * M - k0, own_hi = own_lo + M;
      const A wi = w[i], rl = row_lse[i];
      const A* gai = ga + i * M;
      const A* pli = pair_lse + i * M;
      const A* gtk = gtt + k0;
      const A* clk = col_lse + k0;
      A acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < kKB; ++j) {
        const bool own = j >= own_lo && j < own_hi, in = j < kb;
        const int64_t jj = own ? j - own_lo : 0, jk = in ? j : 0;
        const A s = row[j] * scale;
        const A a2t = own ? gai[jj] * (vexp(s - pli[jj]) - A(1)) : wi * vexp(s - rl);
        const A t2a = gtk[jk] * (vexp(s - clk[jk]) - (own ? A(1) : A(0)));
        const A ds = in ? a2t + t2a : A(0);
        acc += ds * row[j];
        row[j] = ds;
      }
      return acc;
    };
    dscale += grad_query_pass<T, A>(audio, B, text, BM, D, scale, coef_both, d_audio.data());
    grad_key_pass<T, A>(audio, B, text, BM, D, scale, coef_both, d_text.data());
  } else {
    d_audio_all.assign(G * D, A(0));
    d_text_all.assign(G * M * D, A(0));
    dscale += grad_query_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_audio.data());
    grad_key_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_text_all.data());
    dscale += grad_query_pass<T, A>(text, BM, audio_all, G, D, scale, coef_t2a, d_text.data());
    grad_key_pass<T, A>(text, BM, audio_all, G, D, scale, coef_t2a, d_audio_all.data());
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
  auto store = [](const std::vector<A>& src, void* dst) {
    T* out = static_cast<T*>(dst);
    const int64_t n = static_cast<int64_t>(src.size());
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = cvt_out<T, A>(src[i]);
  };
  store(d_audio, g.d_audio);
  store(d_text, g.d_text);
  if (single) {  // every gradient is in d_audio / d_text already
    std::fill_n(static_cast<T*>(g.d_audio_all), G * D, cvt_out<T, A>(A(0)));
    std::fill_n(static_cast<T*>(g.d_text_all), G * M * D, cvt_out<T, A>(A(0)));
  } else {
    store(d_audio_all, g.d_audio_all);
    store(d_text_all, g.d_text_all);
  }
  *g.d_scale = dscale;
}

}  // namespace

void contrastive_forward_cpu(DType dtype, const ContrastParams& p, const ContrastForward& f) {
  switch (dtype) {
    case DType::kFloat32: forward<float>(p, f); break;
    case DType::kFloat16: forward<fp16_t>(p, f); break;
    case DType::kBFloat16: forward<bf16_t>(p, f); break;
    case DType::kFloat64: forward<double>(p, f); break;
  }
}

void contrastive_backward_cpu(DType dtype, const ContrastParams& p, const ContrastBackward& g) {
  switch (dtype) {
    case DType::kFloat32: backward<float>(p, g); break;
    case DType::kFloat16: backward<fp16_t>(p, g); break;
    case DType::kBFloat16: backward<bf16_t>(p, g); break;
    case DType::kFloat64: backward<double>(p, g); break;
  }
}

}  // namespace af2
