// Contrastive loss, CPU backward of the single-process case (keys = the local batch): the
// gradients of both directions' scores in one pass.
//
// What: d audio and d text of contrastive.h's terms through the scores S(i, q) = s <a_i, t_q>
//       (the hard negatives are contrastive_cpu.cpp's), and their share of d(scale).
// How:  per (audio block) x (text tile) cell: S recomputed by mk::gemm_nt, dS = dS_a2t + dS_t2a
//       formed with one vectorised exp per score off the own-caption band (two exps on it and
//       in cells that spread too far, contrastive_cpu_fused.h), then both gradient products on
//       the same tile (mk::gemm_nn_acc): d audio_blk += dS T_tile, d text_tile += dS^T A_blk.
//       Threads take cells from a CellQueue ordered per text chunk and per audio chunk (a
//       wavefront): every cell owns the rows it writes, no atomics, the same bits for any
//       thread count.
// Assumes: contiguous row-major inputs; float accumulation (double for float64).
#include "common/dtype_dispatch.h"
#include "contrastive/contrastive_cpu_fused.h"

namespace af2 {
// compiled once per CPU variant (common/isa.h)
AF2_ISA_BEGIN
namespace contrastive_cpu {
namespace {

// dS for the one score family S(i, q), both directions:
//   a2t: own q (q in [i M, i M + M), m = q - i M): g_a[i, m] (exp(S - pair_lse[i, m]) - 1)
//        other q: w_i exp(S - row_lse_i),  w_i = sum_m g_a[i, m] exp(row_lse_i - pair_lse[i, m])
//   t2a: g_t[q] (exp(S - col_lse_q) - [q is i's own])
// d audio_i += s sum_q dS(i, q) t_q, d text_q += s sum_i dS(i, q) a_i; returns d s = sum dS <a_i,
// t_q>. dA (B, D), dT (B M, D): compute-type accumulators, zeroed by the caller.
template <typename T, typename A>
double fused_backward(const T* audio, int64_t B, const T* text, int64_t M, int64_t D, A scale,
                      const A* ga, const A* gt, const A* row_lse, const A* pair_lse,
                      const A* col_lse, const A* w, A* dA, A* dT) {
  using V = VecT<A>;
  constexpr int NV = kRowVecs<A>, VN = kVN<A>;
  const int64_t BM = B * M, ntiles = (BM + kTK - 1) / kTK, nblocks = (B + kTA - 1) / kTA;
  const A ninf = neg_inf<A>(), inf = std::numeric_limits<A>::infinity();
  const int64_t Ct = std::min(ntiles, kChunks), Ca = std::min(nblocks, kChunks);
  std::vector<double> cell_ds(static_cast<size_t>(Ct * Ca), 0.0);
  const std::vector<A> packed = pack_text_tiles<T, A>(text, BM, D);
  CellQueue queue(Ct, Ca, true);
#pragma omp parallel
  {
    CellBuffers<A> buf(D, true);
    std::vector<A> Pbuf(static_cast<size_t>(kTA * kTK));
    alignas(64) A cg[kTK], ccl[kTK], beta[kTK];
    A alpha[kTA], rrl[kTA];
    int64_t cell_t, cell_a;
    while (queue.take(cell_t, cell_a)) {
      const auto [tile_lo, tile_hi] = chunk(ntiles, cell_t, Ct);
      const auto [blk_lo, blk_hi] = chunk(nblocks, cell_a, Ca);
      double ds_acc = 0;
      for (int64_t tile = tile_lo; tile < tile_hi; ++tile) {
        const int64_t k0 = tile * kTK, kb = std::min(kTK, BM - k0);
        const A* tt = packed.data() + tile * D * kTK;
        const A* trows = tile_rows<T, A>(text, k0, kb, kTK, D, buf.trows);
        std::fill(buf.dT.begin(), buf.dT.end(), A(0));
        A min_cl = inf, max_cl = ninf;
        for (int64_t j = 0; j < kTK; ++j) {
          const bool in = j < kb;
          cg[j] = in ? gt[k0 + j] : A(0);
          ccl[j] = in ? col_lse[k0 + j] : A(0);
          if (in) {
            min_cl = std::min(min_cl, ccl[j]);
            max_cl = std::max(max_cl, ccl[j]);
          }
        }
        for (int64_t blk = blk_lo; blk < blk_hi; ++blk) {
          const int64_t i0 = blk * kTA, n = std::min(kTA, B - i0);
          const A* arows = tile_rows<T, A>(audio, i0, n, kTA, D, buf.arows);
          A* S = buf.S.data();  // raw dots <a_i, t_q>
          A* P = Pbuf.data();   // dS, times s
          mk::gemm_nt<A>(arows, D, kTA, tt, kTK, D, S);
          A min_rl = inf, max_rl = ninf;
          for (int64_t r = 0; r < n; ++r) {
            const A v = row_lse[i0 + r];
            rrl[r] = v == ninf ? inf : v;  // no other row: w = 0 and exp(S - inf) = 0
            min_rl = std::min(min_rl, v);
            max_rl = std::max(max_rl, v);
          }
          const bool band = on_band(i0, n, k0, kb, M);
          const A cst = std::min(max_rl, max_cl);  // >= every score of an off-band cell
          const bool fast = !band && cst - min_rl <= kSpread<A> && cst - min_cl <= kSpread<A>;
          if (fast) {
            for (int64_t r = 0; r < n; ++r) alpha[r] = w[i0 + r] * vexp(cst - rrl[r]);
            for (int64_t j = 0; j < kTK; ++j) beta[j] = j < kb ? cg[j] * vexp(cst - ccl[j]) : A(0);
          }
          V dsv = V{};
          for (int64_t r = 0; r < n; ++r) {
            const A* x = S + r * kTK;
            A* p = P + r * kTK;
            const int64_t i = i0 + r;
            if (fast) {  // dS = exp(s S - c) (alpha_i + beta_q): one exp per score
              const V al = mk::vsplat(alpha[r]);
              for (int c = 0; c < NV; ++c)
                mk::vstore(p + c * VN, exp_vec<A>(mk::vload(x + c * VN) * scale - cst) *
                                           (al + mk::vload(beta + c * VN)));
            } else {
              const V wr = mk::vsplat(w[i]), lr = mk::vsplat(rrl[r]);
              for (int c = 0; c < NV; ++c) {
                const V s = mk::vload(x + c * VN) * scale;
                mk::vstore(p + c * VN,
                           wr * exp_vec<A>(s - lr) +
                               mk::vload(cg + c * VN) * exp_vec<A>(s - mk::vload(ccl + c * VN)));
              }
              const int64_t own_lo = std::max<int64_t>(i * M - k0, 0),
                            own_hi = std::min<int64_t>(i * M + M - k0, kb);
              for (int64_t j = own_lo; j < own_hi; ++j) {
                const int64_t pm = i * M + (k0 + j - i * M);  // (i, m) pair index = q
                const A s = x[j] * scale;
                p[j] = ga[pm] * (vexp(s - pair_lse[pm]) - A(1)) + cg[j] * (vexp(s - ccl[j]) - A(1));
              }
            }
            if (kb < kTK)
              for (int64_t j = kb; j < kTK; ++j) p[j] = A(0);
            for (int c = 0; c < NV; ++c) {
              const V d = mk::vload(p + c * VN);
              dsv += d * mk::vload(x + c * VN);
              mk::vstore(p + c * VN, d * scale);
            }
          }
          std::fill(P + n * kTK, P + kTA * kTK, A(0));
          ds_acc += static_cast<double>(hsum<A>(dsv));
          // d audio rows of the block += dS (kTA x kTK) x text tile rows (kTK x D): straight into
          // the accumulator when the block is full, through a padded buffer otherwise
          if (n == kTA) {
            mk::gemm_nn_acc<A>(dA + i0 * D, P, kTK, 1, trows, kTA, kTK, D);
          } else {
            std::fill(buf.dA.begin(), buf.dA.end(), A(0));
            mk::gemm_nn_acc<A>(buf.dA.data(), P, kTK, 1, trows, kTA, kTK, D);
            for (int64_t r = 0; r < n; ++r) {
              A* dst = dA + (i0 + r) * D;
              const A* src = buf.dA.data() + r * D;
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) dst[d] += src[d];
            }
          }
          // d text rows of the tile: dS^T (kTK x kTA) x audio block rows (kTA x D)
          mk::gemm_nn_acc<A>(buf.dT.data(), P, 1, kTK, arows, kTK, kTA, D);
        }
        for (int64_t j = 0; j < kb; ++j) {
          A* dst = dT + (k0 + j) * D;
          const A* src = buf.dT.data() + j * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) dst[d] += src[d];
        }
      }
      cell_ds[cell_t * Ca + cell_a] = ds_acc;
      queue.done(cell_t, cell_a);
    }
  }
  double total = 0;
  for (double v : cell_ds) total += v;  // cell order: the same result for any schedule
  return total;
}

}  // namespace

template <typename T>
double fused_grads(const ContrastParams& p, const ContrastBackward& g, const Acc<T>* w,
                   Acc<T>* d_audio, Acc<T>* d_text) {
  using A = Acc<T>;
  const auto* gt = static_cast<const A*>(g.grad_terms);
  return fused_backward<T, A>(static_cast<const T*>(p.audio), p.B, static_cast<const T*>(p.text),
                              p.M, p.D, static_cast<A>(p.scale), gt, gt + p.B * p.M,
                              static_cast<const A*>(g.row_lse), static_cast<const A*>(g.pair_lse),
                              static_cast<const A*>(g.col_lse), w, d_audio, d_text);
}

#define AF2_INSTANTIATE(T)                                                                      \
  template double fused_grads<T>(const ContrastParams&, const ContrastBackward&, const Acc<T>*, \
                                 Acc<T>*, Acc<T>*);
AF2_FOR_EACH_DTYPE(AF2_INSTANTIATE)
#undef AF2_INSTANTIATE

}  // namespace contrastive_cpu
AF2_ISA_END
}  // namespace af2
