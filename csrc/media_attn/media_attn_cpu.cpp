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
//       Tile sizes and the row / range / mask helpers: media_attn_cpu_tiles.h.
// Assumes: unit stride along D; 0 <= start <= end <= Lk (checked by the bindings).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/dtype_dispatch.h"
#include "media_attn/media_attn_cpu_tiles.h"

namespace af2 {
// compiled once per CPU variant (common/isa.h)
AF2_ISA_BEGIN
namespace media_attn_cpu {
namespace {

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
    std::vector<A> Q(kQT * D), KT(D * kKT), Vt(kKT * D), S(kQT * kKT), acc(kQT * D), m(kQT), l(kQT);
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
          mk::gemm_nn_acc<A>(dQ.data() + j0 * D, dS.data() + j0 * kKT, kKT, 1, K.data(), J, kb, D);
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

}  // namespace
}  // namespace media_attn_cpu

int media_attn_forward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnForward& f) {
  dispatch_dtype(dtype, [&](auto t) { media_attn_cpu::forward<decltype(t)>(p, f); });
  return 0;
}

int media_attn_backward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g) {
  dispatch_dtype(dtype, [&](auto t) { media_attn_cpu::backward<decltype(t)>(p, g); });
  return 0;
}

AF2_ISA_END
}  // namespace af2
