// Contrastive loss, CPU forward of the single-process case (keys = the local batch): row_lse
// and col_lse of contrastive.h in one pass.
//
// What: a2t and t2a share every score S(i, q) = s <a_i, t_q>, so one tiled pass over
//       (audio block) x (text tile) cells yields both log-sum-exps (the own captions left out of
//       the row sums), never forming the B x B M score matrix.
// How:  scores from the register-blocked mk::gemm_nt against text tiles packed transposed once;
//       one vectorised exp per score shared by the row and the column sums, except on the
//       own-caption band and in cells whose rows/columns spread too far (the exact two-exp path,
//       contrastive_cpu_fused.h). Threads take cells from a CellQueue (ordered per text chunk):
//       no atomics, the same bits for any thread count.
// Assumes: contiguous row-major inputs (contrastive.h); float accumulation (double for float64).
#include "common/dtype_dispatch.h"
#include "contrastive/contrastive_cpu_fused.h"

namespace af2 {
// compiled once per CPU variant (common/isa.h)
AF2_ISA_BEGIN
namespace contrastive_cpu {
namespace {

template <typename T, typename A>
void fused_forward(const T* audio, int64_t B, const T* text, int64_t M, int64_t D, A scale,
                   A* row_lse, A* col_lse) {
  using V = VecT<A>;
  constexpr int NV = kRowVecs<A>, VN = kVN<A>;
  const int64_t BM = B * M, ntiles = (BM + kTK - 1) / kTK, nblocks = (B + kTA - 1) / kTA;
  const int64_t Ct = std::min(ntiles, kChunks), Ca = std::min(nblocks, kChunks);
  const A ninf = neg_inf<A>();
  // online (max, sum) per text chunk of every audio row's a2t normaliser (without its own
  // captions), and per text row of its t2a normaliser
  std::vector<A> rm(static_cast<size_t>(Ct * B), ninf), rl(static_cast<size_t>(Ct * B), A(0));
  std::vector<A> cm(static_cast<size_t>(BM), ninf), cl(static_cast<size_t>(BM), A(0));
  const std::vector<A> packed = pack_text_tiles<T, A>(text, BM, D);
  CellQueue queue(Ct, Ca, false);
#pragma omp parallel
  {
    CellBuffers<A> buf(D, false);
    alignas(64) A cmax[kTK], csum[kTK], cml[kTK];
    A rmax[kTA];
    int64_t cell_t, cell_a;
    while (queue.take(cell_t, cell_a)) {
      const auto [tile_lo, tile_hi] = chunk(ntiles, cell_t, Ct);
      const auto [blk_lo, blk_hi] = chunk(nblocks, cell_a, Ca);
      A* m = rm.data() + cell_t * B;
      A* l = rl.data() + cell_t * B;
      for (int64_t tile = tile_lo; tile < tile_hi; ++tile) {
        const int64_t k0 = tile * kTK, kb = std::min(kTK, BM - k0);
        const A* tt = packed.data() + tile * D * kTK;
        A* tcm = cm.data() + k0;  // kb entries
        A* tcl = cl.data() + k0;
        for (int64_t blk = blk_lo; blk < blk_hi; ++blk) {
          const int64_t i0 = blk * kTA, n = std::min(kTA, B - i0);
          const A* arows = tile_rows<T, A>(audio, i0, n, kTA, D, buf.arows);
          A* S = buf.S.data();
          mk::gemm_nt<A>(arows, D, kTA, tt, kTK, D, S);
          // x = s S (padded columns -inf); column and row maxima
          V cmv[NV];
          for (int c = 0; c < NV; ++c) cmv[c] = mk::vsplat(ninf);
          for (int64_t r = 0; r < n; ++r) {
            A* x = S + r * kTK;
            V rmv = mk::vsplat(ninf);
            for (int c = 0; c < NV; ++c) {
              V v = mk::vload(x + c * VN) * scale;
              if (kb < kTK)
                for (int lane = 0; lane < VN; ++lane)
                  if (c * VN + lane >= kb) v[lane] = ninf;
              mk::vstore(x + c * VN, v);
              cmv[c] = vmax<A>(cmv[c], v);
              rmv = vmax<A>(rmv, v);
            }
            rmax[r] = hmax<A>(rmv);
          }
          for (int c = 0; c < NV; ++c) mk::vstore(cmax + c * VN, cmv[c]);
          A cst = ninf, min_col = std::numeric_limits<A>::infinity(), min_row = min_col;
          for (int64_t j = 0; j < kb; ++j) {
            cst = std::max(cst, cmax[j]);
            min_col = std::min(min_col, cmax[j]);
          }
          for (int64_t r = 0; r < n; ++r) min_row = std::min(min_row, rmax[r]);
          const bool band = on_band(i0, n, k0, kb, M);
          if (!band && cst - min_row <= kSpread<A> && cst - min_col <= kSpread<A>) {
            // one exp per score, shared by the row and the column sums
            V csv[NV];
            for (int c = 0; c < NV; ++c) csv[c] = V{};
            for (int64_t r = 0; r < n; ++r) {
              const A* x = S + r * kTK;
              V rs = V{};
              for (int c = 0; c < NV; ++c) {
                const V e = exp_vec<A>(mk::vload(x + c * VN) - cst);
                rs += e;
                csv[c] += e;
              }
              const int64_t i = i0 + r;
              const A mn = std::max(m[i], rmax[r]);
              l[i] = l[i] * vexp(m[i] - mn) + hsum<A>(rs) * vexp(cst - mn);
              m[i] = mn;
            }
            for (int c = 0; c < NV; ++c) mk::vstore(csum + c * VN, csv[c]);
            for (int64_t j = 0; j < kb; ++j) {
              const A mn = std::max(tcm[j], cmax[j]);
              tcl[j] = tcl[j] * vexp(tcm[j] - mn) + csum[j] * vexp(cst - mn);
              tcm[j] = mn;
            }
          } else {
            // exact: columns (every audio row counts), then rows without their own captions
            for (int64_t j = 0; j < kTK; ++j) {
              if (j >= kb) {
                cml[j] = A(0);  // padded columns: x = -inf, exp = 0
                continue;
              }
              const A mn = std::max(tcm[j], cmax[j]);
              tcl[j] *= vexp(tcm[j] - mn);
              tcm[j] = cml[j] = mn;
            }
            V csv[NV];
            for (int c = 0; c < NV; ++c) csv[c] = V{};
            for (int64_t r = 0; r < n; ++r) {
              const A* x = S + r * kTK;
              for (int c = 0; c < NV; ++c)
                csv[c] += exp_vec<A>(mk::vload(x + c * VN) - mk::vload(cml + c * VN));
            }
            for (int c = 0; c < NV; ++c) mk::vstore(csum + c * VN, csv[c]);
            for (int64_t j = 0; j < kb; ++j) tcl[j] += csum[j];
            for (int64_t r = 0; r < n; ++r) {
              A* x = S + r * kTK;
              const int64_t i = i0 + r, own_lo = std::max<int64_t>(i * M - k0, 0),
                            own_hi = std::min<int64_t>(i * M + M - k0, kb);
              for (int64_t j = own_lo; j < own_hi; ++j) x[j] = ninf;
              V mv = mk::vsplat(ninf);
              for (int c = 0; c < NV; ++c) mv = vmax<A>(mv, mk::vload(x + c * VN));
              const A mx = hmax<A>(mv);
              if (mx == ninf) continue;
              const A mn = std::max(m[i], mx);
              V rs = V{};
              for (int c = 0; c < NV; ++c) rs += exp_vec<A>(mk::vload(x + c * VN) - mn);
              l[i] = l[i] * vexp(m[i] - mn) + hsum<A>(rs);
              m[i] = mn;
            }
          }
        }
      }
      queue.done(cell_t, cell_a);
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < BM; ++q) col_lse[q] = cm[q] + std::log(cl[q]);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B; ++i) {
    A mm = ninf, ll = 0;
    for (int64_t c = 0; c < Ct; ++c) {  // chunk order: the same result for any schedule
      const A mc = rm[c * B + i], lc = rl[c * B + i];
      if (lc == A(0)) continue;
      const A mn = std::max(mm, mc);
      ll = ll * vexp(mm - mn) + lc * vexp(mc - mn);
      mm = mn;
    }
    row_lse[i] = ll > A(0) ? mm + std::log(ll) : ninf;
  }
}

}  // namespace

template <typename T>
void fused_lse(const ContrastParams& p, const ContrastForward& f) {
  using A = Acc<T>;
  fused_forward<T, A>(static_cast<const T*>(p.audio), p.B, static_cast<const T*>(p.text), p.M, p.D,
                      static_cast<A>(p.scale), static_cast<A*>(f.row_lse),
                      static_cast<A*>(f.col_lse));
}

#define AF2_INSTANTIATE(T) \
  template void fused_lse<T>(const ContrastParams&, const ContrastForward&);
AF2_FOR_EACH_DTYPE(AF2_INSTANTIATE)
#undef AF2_INSTANTIATE

}  // namespace contrastive_cpu
AF2_ISA_END
}  // namespace af2
