// Media cross-attention, CPU kernels (forward and backward).
//
// What: softmax(scale * q k^T over each query's key range [key_start, key_end) and the key
//       padding mask) v (media_attn.h has the contract), never materialising Lq x Lk.
// How:  forward: OpenMP over (batch, head, tile of kQT queries), the tasks ordered by the number
//       of keys they attend (largest first, so ragged ranges still spread evenly). A task loads
//       its queries once (times scale, as float), and walks the union of their key ranges in
//       tiles of kKT keys: the tile of K (transposed) and V is converted to float once and shared
//       by all the task's queries. The score block S = Q K^T (kQT x kKT) and acc += P V are
//       register-blocked micro-kernels (common/microkernels.h: kGemmMR rows x 2 vectors held in
//       registers across the reduction), run only on the row blocks of kGemmMR queries that
//       attend the tile; an online softmax keeps a running max and sum per query (vectorised
//       exp, common/vexp.h). Key tiles that no query of a row block attends cost nothing.
//       Backward: OpenMP over (batch, head), each task owning its dK/dV rows (float
//       accumulators); per (query tile, key tile) it recomputes S, P = exp(S - lse) and dP = dO V^T
//       with the same micro-kernels, dS = P (dP - rowsum(dO * O)), and accumulates dV += P^T dO,
//       dK += dS^T (scale Q), dQ += dS K.
//       NaN: the running max propagates NaN, so a NaN among a query's attended scores makes its
//       output, lse and gradients NaN, as the dense reference does; a NaN in q or k that no score
//       of a query attends leaves that query's gradients finite (NaN in v or grad_out reaches
//       the queries of its row block: 0 * NaN).
// Assumes: unit stride along D; 0 <= start <= end <= Lk (checked by the bindings).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common/microkernels.h"
#include "common/vexp.h"
#include "media_attn/media_attn.h"

namespace af2 {
AF2_ISA_BEGIN  // compiled once per CPU variant (common/isa.h)
    namespace {
  constexpr int64_t kMR = mk::kGemmMR;                    // query rows per micro-tile (6 or 12)
  constexpr int64_t kQT = 48;                             // queries per task: a multiple of kMR
  constexpr int64_t kKT = mk::kVecBytes == 64 ? 96 : 48;  // keys per tile: a multiple of kMR and
                                                          // of the micro-kernel's column width
  static_assert(kQT % kMR == 0 && kKT % kMR == 0, "tiles must hold whole micro-tiles");
  static_assert(
      kKT % (mk::kGemmNV * mk::Vec<float>::N) == 0 && kKT % (mk::kGemmNV * mk::Vec<double>::N) == 0,
      "key tiles must hold whole micro-tile columns");
  constexpr int64_t kRowBlocks = kQT / kMR;

  template <typename T>
  inline const T* row_ptr(const BLHD& t, int64_t b, int64_t l, int64_t h) {
    return static_cast<const T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
  }
  template <typename T>
  inline T* row_ptr(const BLHDOut& t, int64_t b, int64_t l, int64_t h) {
    return static_cast<T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
  }

  // rows [l0, l0 + n) of head h of batch b into dst (rows x D), times mult; rows n.. are zeroed.
  template <typename T, typename A>
  void load_rows(const BLHD& t, int64_t b, int64_t l0, int64_t n, int64_t rows, int64_t h,
                 int64_t D, A mult, A* dst) {
    for (int64_t r = 0; r < n; ++r) {
      const T* src = row_ptr<T>(t, b, l0 + r, h);
      A* out = dst + r * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) out[d] = cvt_in(src[d]) * mult;
    }
    if (n < rows) std::memset(dst + n * D, 0, sizeof(A) * (rows - n) * D);
  }

  // dst (n values) = src with NaN replaced by 0.
  template <typename A>
  inline void copy_without_nan(const A* src, int64_t n, A* dst) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i] == src[i] ? src[i] : A(0);
  }

  // rows [l0, l0 + n) transposed into dst (D x kKT); columns n.. are zeroed.
  template <typename T, typename A>
  void load_rows_transposed(const BLHD& t, int64_t b, int64_t l0, int64_t n, int64_t h, int64_t D,
                            A* dst) {
    for (int64_t r = 0; r < n; ++r) {
      const T* src = row_ptr<T>(t, b, l0 + r, h);
      for (int64_t d = 0; d < D; ++d) dst[d * kKT + r] = cvt_in(src[d]);
    }
    if (n < kKT)
      for (int64_t d = 0; d < D; ++d) std::memset(dst + d * kKT + n, 0, sizeof(A) * (kKT - n));
  }

  struct RowRange {
    int64_t start, end;  // clamped to [0, Lk]; start >= end: empty
  };

  // The key ranges of queries [i0, i0 + n) of batch b (rows n..kQT empty); returns the union
  // [lo, hi) (lo >= hi: no query attends a key).
  inline void row_ranges(const MediaAttnParams& p, int64_t b, int64_t i0, int64_t n, RowRange* rr,
                         int64_t* lo, int64_t* hi) {
    *lo = p.Lk, *hi = 0;
    for (int64_t r = 0; r < kQT; ++r) {
      if (r >= n) {
        rr[r] = RowRange{0, 0};
        continue;
      }
      const int64_t s = std::max<int64_t>(0, p.key_start[b * p.Lq + i0 + r]);
      const int64_t e = std::min<int64_t>(p.Lk, p.key_end[b * p.Lq + i0 + r]);
      rr[r] = RowRange{s, e};
      if (s < e) *lo = std::min(*lo, s), *hi = std::max(*hi, e);
    }
  }

  // Which row blocks of kMR queries attend a key of [t0, t1); returns how many do.
  inline int active_blocks(const RowRange* rr, int64_t t0, int64_t t1, bool* active) {
    int count = 0;
    for (int64_t rb = 0; rb < kRowBlocks; ++rb) {
      bool any = false;
      for (int64_t r = rb * kMR; r < (rb + 1) * kMR; ++r)
        any = any || (rr[r].start < rr[r].end && rr[r].start < t1 && rr[r].end > t0);
      active[rb] = any;
      count += any;
    }
    return count;
  }

  // S (kMR x kKT, row stride kKT) = Qb (kMR x D) KT (D x kKT).
  template <typename A>
  inline void score_block(const A* Qb, const A* KT, int64_t D, A* S) {
    constexpr int64_t CW = mk::kGemmNV * mk::Vec<A>::N;
    for (int64_t c0 = 0; c0 < kKT; c0 += CW)
      mk::gemm_nt_micro<A>(Qb, D, KT + c0, kKT, D, S + c0, kKT);
  }

  // Sets the entries of score row s (tile keys t0 + j, j < kKT) that the row does not attend to
  // -inf: keys past the tile (kb), outside [start, end), or padded (key_ok[j] = 0).
  template <typename A>
  inline void mask_row(A * s, const RowRange& r, int64_t t0, int64_t kb, bool tile_all_ok,
                       const uint8_t* key_ok) {
    const int64_t lo = r.start - t0, hi = std::min(r.end - t0, kb);
    if (tile_all_ok && lo <= 0 && hi >= kKT) return;  // the whole tile is attended
    const A ninf = -std::numeric_limits<A>::infinity();
#pragma omp simd
    for (int64_t j = 0; j < kKT; ++j) s[j] = (key_ok[j] && j >= lo && j < hi) ? s[j] : ninf;
  }

  // max that propagates NaN: a NaN among the scores makes the row's max (hence its output) NaN.
  template <typename A>
  inline A nan_max(A a, A b) {
    return (b > a || b != b) ? b : a;
  }

  // exp of a vector of scores: vexp_vec for float; lane by lane for double (the gradcheck path).
  inline mk::Vec<float>::type exp_scores(mk::Vec<float>::type x) {
    return vexp_vec<mk::Vec<float>::type, mk::Vec<int32_t>::type>(x);
  }
  inline mk::Vec<double>::type exp_scores(mk::Vec<double>::type x) {
    for (int c = 0; c < mk::Vec<double>::N; ++c) x[c] = std::exp(x[c]);
    return x;
  }

  // Forward cost of a task: the keys its queries attend.
  inline int64_t task_keys(const MediaAttnParams& p, int64_t b, int64_t i0, int64_t n) {
    int64_t keys = 0;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t s = std::max<int64_t>(0, p.key_start[b * p.Lq + i0 + r]);
      const int64_t e = std::min<int64_t>(p.Lk, p.key_end[b * p.Lq + i0 + r]);
      keys += std::max<int64_t>(0, e - s);
    }
    return keys;
  }

  // Task indices ordered by decreasing cost (ties by index), for dynamic scheduling.
  inline std::vector<int64_t> largest_first(const std::vector<int64_t>& cost) {
    std::vector<int64_t> order(cost.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
    return order;
  }

  // Keys of [t0, t0 + kb) that are not padded (key_ok[j] = 1 for j < kb, 0 past it); returns
  // whether all kKT entries are 1.
  inline bool tile_keys_ok(const uint8_t* pad, int64_t t0, int64_t kb, uint8_t* key_ok) {
    bool all = kb == kKT;
    for (int64_t j = 0; j < kKT; ++j) {
      key_ok[j] = j < kb && (pad == nullptr || pad[t0 + j]);
      all = all && key_ok[j];
    }
    return all;
  }

  template <typename T>
  void forward(const MediaAttnParams& p, const MediaAttnForward& f) {
    using A = typename AccOf<T>::type;
    using V = typename mk::Vec<A>::type;
    constexpr int64_t VN = mk::Vec<A>::N;
    static_assert(kKT % VN == 0, "score rows are whole vectors");
    const int64_t D = p.D, nqt = (p.Lq + kQT - 1) / kQT, tasks = p.B * p.H * nqt;
    const A inf = std::numeric_limits<A>::infinity();
    std::vector<int64_t> cost(static_cast<size_t>(tasks));
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t qt = task % nqt, b = task / (nqt * p.H);
      cost[task] = task_keys(p, b, qt * kQT, std::min(kQT, p.Lq - qt * kQT));
    }
    const std::vector<int64_t> order = largest_first(cost);
#pragma omp parallel
    {
      std::vector<A> Q(kQT * D), KT(D * kKT), Vt(kKT * D), S(kQT * kKT), acc(kQT * D), m(kQT),
          l(kQT);
      RowRange rr[kQT];
      bool active[kRowBlocks];
      uint8_t key_ok[kKT];
#pragma omp for schedule(dynamic, 1)
      for (int64_t idx = 0; idx < tasks; ++idx) {
        const int64_t task = order[idx];
        const int64_t qt = task % nqt, h = (task / nqt) % p.H, b = task / (nqt * p.H);
        const int64_t i0 = qt * kQT, n = std::min(kQT, p.Lq - i0);
        const uint8_t* pad = p.key_padding ? p.key_padding + b * p.Lk : nullptr;
        int64_t lo, hi;
        row_ranges(p, b, i0, n, rr, &lo, &hi);
        std::fill(acc.begin(), acc.end(), A(0));
        std::fill(m.begin(), m.end(), -inf);
        std::fill(l.begin(), l.end(), A(0));
        if (lo < hi) load_rows<T, A>(p.q, b, i0, n, kQT, h, D, static_cast<A>(p.scale), Q.data());
        for (int64_t t0 = lo; t0 < hi; t0 += kKT) {
          const int64_t kb = std::min(kKT, hi - t0);
          if (active_blocks(rr, t0, t0 + kb, active) == 0) continue;
          load_rows_transposed<T, A>(p.k, b, t0, kb, h, D, KT.data());
          load_rows<T, A>(p.v, b, t0, kb, kKT, h, D, A(1), Vt.data());
          const bool all_ok = tile_keys_ok(pad, t0, kb, key_ok);
          for (int64_t rb = 0; rb < kRowBlocks; ++rb) {
            if (!active[rb]) continue;
            A* Sb = S.data() + rb * kMR * kKT;
            score_block(Q.data() + rb * kMR * D, KT.data(), D, Sb);
            for (int64_t r = rb * kMR; r < (rb + 1) * kMR; ++r) {
              A* s = S.data() + r * kKT;
              mask_row(s, rr[r], t0, kb, all_ok, key_ok);
              V vmax = mk::vsplat(-inf);
              for (int64_t j = 0; j < kKT; j += VN) {
                const V x = mk::vload(s + j);
                vmax = (x > vmax || x != x) ? x : vmax;
              }
              A mx = -inf;
              for (int c = 0; c < VN; ++c) mx = nan_max(mx, vmax[c]);
              if (mx == -inf) {  // no attended key in this tile: P = 0, state unchanged
                std::fill(s, s + kKT, A(0));
                continue;
              }
              const A m_new = nan_max(m[r], mx);
              const A alpha = vexp(m[r] - m_new);
              const V vm = mk::vsplat(m_new);
              V vsum = V{};
              for (int64_t j = 0; j < kKT; j += VN) {
                const V e = exp_scores(mk::vload(s + j) - vm);
                mk::vstore(s + j, e);
                vsum += e;
              }
              A sum = 0;
              for (int c = 0; c < VN; ++c) sum += vsum[c];
              l[r] = l[r] * alpha + sum;
              m[r] = m_new;
              if (alpha != A(1)) {
                A* a = acc.data() + r * D;
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) a[d] *= alpha;
              }
            }
            // acc += P V for the block's rows (a row without a key in this tile has P = 0).
            mk::gemm_nn_acc<A>(acc.data() + rb * kMR * D, Sb, kKT, 1, Vt.data(), kMR, kb, D);
          }
        }
        for (int64_t r = 0; r < n; ++r) {
          T* out = row_ptr<T>(f.out, b, i0 + r, h);
          const A* a = acc.data() + r * D;
          if (l[r] == A(0)) {  // a query without keys: exactly 0 (its acc may hold 0 * NaN of V)
            for (int64_t d = 0; d < D; ++d) out[d] = cvt_out<T, A>(A(0));
          } else {  // NaN stays NaN
            const A inv = A(1) / l[r];
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) out[d] = cvt_out<T, A>(a[d] * inv);
          }
          static_cast<A*>(f.lse)[(b * p.H + h) * p.Lq + i0 + r] =
              l[r] == A(0) ? inf : m[r] + std::log(l[r]);
        }
      }
    }
  }

  template <typename T>
  void backward(const MediaAttnParams& p, const MediaAttnBackward& g) {
    using A = typename AccOf<T>::type;
    using V = typename mk::Vec<A>::type;
    constexpr int64_t VN = mk::Vec<A>::N;
    const int64_t D = p.D, Lk = p.Lk, nqt = (p.Lq + kQT - 1) / kQT;
    const A scale = static_cast<A>(p.scale);
    std::vector<int64_t> cost(static_cast<size_t>(p.B * p.H));
    for (int64_t task = 0; task < p.B * p.H; ++task) cost[task] = task_keys(p, task / p.H, 0, p.Lq);
    const std::vector<int64_t> order = largest_first(cost);
#pragma omp parallel
    {
      // dK, dV hold kKT rows past Lk: a tile's products run over whole tiles (zeros past the keys).
      // Qz and K: Q and K with NaN set to 0, for the products dK += dS^T Q and dQ += dS K. A NaN
      // reaches those through dS (its scores) wherever it is attended, and nowhere else (0 * NaN).
      std::vector<A> Q(kQT * D), Qz(kQT * D), dO(kQT * D), dQ(kQT * D), K(kKT * D), KT(D * kKT),
          VT(D * kKT), P(kQT * kKT), dS(kQT * kKT), Di(kQT), lse(kQT), dK((Lk + kKT) * D),
          dV((Lk + kKT) * D);
      RowRange rr[kQT];
      bool active[kRowBlocks];
      uint8_t key_ok[kKT];
#pragma omp for schedule(dynamic, 1)
      for (int64_t idx = 0; idx < p.B * p.H; ++idx) {
        const int64_t task = order[idx];
        const int64_t h = task % p.H, b = task / p.H;
        const uint8_t* pad = p.key_padding ? p.key_padding + b * Lk : nullptr;
        std::fill(dK.begin(), dK.end(), A(0));
        std::fill(dV.begin(), dV.end(), A(0));
        for (int64_t qt = 0; qt < nqt; ++qt) {
          const int64_t i0 = qt * kQT, n = std::min(kQT, p.Lq - i0);
          int64_t lo, hi;
          row_ranges(p, b, i0, n, rr, &lo, &hi);
          if (lo >= hi) {  // no query of the tile attends a key: zero gradient
            for (int64_t r = 0; r < n; ++r) {
              T* dq = row_ptr<T>(g.dq, b, i0 + r, h);
              for (int64_t d = 0; d < D; ++d) dq[d] = cvt_out<T, A>(A(0));
            }
            continue;
          }
          std::fill(dQ.begin(), dQ.end(), A(0));
          load_rows<T, A>(p.q, b, i0, n, kQT, h, D, scale, Q.data());
          copy_without_nan(Q.data(), kQT * D, Qz.data());
          load_rows<T, A>(g.grad_out, b, i0, n, kQT, h, D, A(1), dO.data());
          for (int64_t r = 0; r < kQT; ++r) {
            A acc = 0;
            if (r < n) {
              const T* o = row_ptr<T>(g.out, b, i0 + r, h);
              const A* go = dO.data() + r * D;
#pragma omp simd reduction(+ : acc)
              for (int64_t d = 0; d < D; ++d) acc += go[d] * cvt_in(o[d]);
            }
            Di[r] = acc;
            lse[r] = r < n ? static_cast<const A*>(g.lse)[(b * p.H + h) * p.Lq + i0 + r]
                           : std::numeric_limits<A>::infinity();
          }
          for (int64_t t0 = lo; t0 < hi; t0 += kKT) {
            const int64_t kb = std::min(kKT, hi - t0);
            if (active_blocks(rr, t0, t0 + kb, active) == 0) continue;
            load_rows<T, A>(p.k, b, t0, kb, kKT, h, D, A(1), K.data());
            copy_without_nan(K.data(), kKT * D, K.data());
            load_rows_transposed<T, A>(p.k, b, t0, kb, h, D, KT.data());
            load_rows_transposed<T, A>(p.v, b, t0, kb, h, D, VT.data());
            const bool all_ok = tile_keys_ok(pad, t0, kb, key_ok);
            int64_t first = kRowBlocks, last = -1;  // the active row blocks lie in [first, last]
            for (int64_t rb = 0; rb < kRowBlocks; ++rb) {
              A* Pb = P.data() + rb * kMR * kKT;
              A* dSb = dS.data() + rb * kMR * kKT;
              if (!active[rb]) {
                std::fill(Pb, Pb + kMR * kKT, A(0));
                std::fill(dSb, dSb + kMR * kKT, A(0));
                continue;
              }
              first = std::min(first, rb), last = rb;
              score_block(Q.data() + rb * kMR * D, KT.data(), D, Pb);    // scaled scores
              score_block(dO.data() + rb * kMR * D, VT.data(), D, dSb);  // dP = dO V^T
              for (int64_t r = rb * kMR; r < (rb + 1) * kMR; ++r) {
                A* pr = P.data() + r * kKT;
                A* ds = dS.data() + r * kKT;
                mask_row(pr, rr[r], t0, kb, all_ok, key_ok);
                const V vl = mk::vsplat(lse[r]), vd = mk::vsplat(Di[r]);
                const V ninf = mk::vsplat(-std::numeric_limits<A>::infinity());
                for (int64_t j = 0; j < kKT; j += VN) {
                  const V s = mk::vload(pr + j);
                  const V e = exp_scores(s - vl);
                  const auto masked = s == ninf;  // P and dS exactly 0 (also where dP is NaN)
                  const V pv = masked ? V{} : e;
                  mk::vstore(pr + j, pv);
                  mk::vstore(ds + j, masked ? V{} : pv * (mk::vload(ds + j) - vd));
                }
              }
            }
            const int64_t j0 = first * kMR, J = (last + 1 - first) * kMR;
            // dV += P^T dO and dK += dS^T (scale Q) for the tile's keys; dQ += dS K.
            mk::gemm_nn_acc<A>(dV.data() + t0 * D, P.data() + j0 * kKT, 1, kKT, dO.data() + j0 * D,
                               kKT, J, D);
            mk::gemm_nn_acc<A>(dK.data() + t0 * D, dS.data() + j0 * kKT, 1, kKT, Qz.data() + j0 * D,
                               kKT, J, D);
            mk::gemm_nn_acc<A>(dQ.data() + j0 * D, dS.data() + j0 * kKT, kKT, 1, K.data(), J, kb,
                               D);
          }
          for (int64_t r = 0; r < n; ++r) {
            T* dq = row_ptr<T>(g.dq, b, i0 + r, h);
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) dq[d] = cvt_out<T, A>(dQ[r * D + d] * scale);
          }
        }
        for (int64_t j = 0; j < Lk; ++j) {
          T* dk = row_ptr<T>(g.dk, b, j, h);
          T* dv = row_ptr<T>(g.dv, b, j, h);
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            dk[d] = cvt_out<T, A>(dK[j * D + d]);
            dv[d] = cvt_out<T, A>(dV[j * D + d]);
          }
        }
      }
    }
  }

  template <template <typename> class Fn, typename... Args>
  void dispatch(DType dtype, Args && ... args) {
    switch (dtype) {
      case DType::kFloat32:
        Fn<float>::run(args...);
        break;
      case DType::kFloat16:
        Fn<fp16_t>::run(args...);
        break;
      case DType::kBFloat16:
        Fn<bf16_t>::run(args...);
        break;
      case DType::kFloat64:
        Fn<double>::run(args...);
        break;
    }
  }
  template <typename T>
  struct Forward {
    static void run(const MediaAttnParams& p, const MediaAttnForward& f) { forward<T>(p, f); }
  };
  template <typename T>
  struct Backward {
    static void run(const MediaAttnParams& p, const MediaAttnBackward& g) { backward<T>(p, g); }
  };

}  // namespace

int media_attn_forward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnForward& f) {
  dispatch<Forward>(dtype, p, f);
  return 0;
}

int media_attn_backward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g) {
  dispatch<Backward>(dtype, p, g);
  return 0;
}

AF2_ISA_END
}  // namespace af2
