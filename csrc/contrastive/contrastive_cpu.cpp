// Contrastive loss (M positives, M x N hard negatives), CPU kernels.
//
// What: the terms, statistics and gradients of contrastive.h, never forming the (B M) x G
//       score matrices: extra memory is O((B M + threads * tile) D).
// How (one process, the common case: keys = the local batch): a2t and t2a share every score
//       S(i, q) = s <a_i, t_q>, so the forward is one tiled pass that yields both log-sum-exps,
//       and the backward one tiled pass that recomputes each score tile once and runs both
//       gradient products on it (fused_forward / fused_backward below: 4 GEMM-sized products in
//       all, against the eager loss's 3 plus its B x BM softmax passes). Scores come from a
//       register-blocked micro-kernel (mk::gemm_nt, 12 x 32 on AVX-512) against text tiles packed
//       transposed once per tile; gradients from mk::gemm_nn_acc; one vectorised exp per score
//       (vexp_vec) except on the own-caption band and in cells whose rows/columns spread too far.
//       Threads take cells (text chunk x audio chunk) as they become ready (CellQueue): every
//       cell owns what it writes (no atomics), the summation order is fixed (the same bits for
//       any thread count), and a thread slowed down by other load just takes fewer cells.
//       Several processes (keys = the gathered batch): two log-sum-exp passes (a2t: audio rows
//       against all texts except their own block; t2a: text rows against all audio), and four
//       gradient passes (query side over query blocks, key side over key tiles), each tile
//       converted once per pass (Packed).
//       Hard negatives and positives: per-pair dot products.
// Assumes: contiguous row-major inputs; float accumulation (double for float64 inputs);
//       16-bit inputs are converted to float once per tile / block.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/microkernels.h"
#include "common/vexp.h"
#include "contrastive/contrastive.h"

namespace af2 {
AF2_ISA_BEGIN  // compiled once per CPU variant (common/isa.h)
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

  template <typename A>
  inline A neg_inf() {
    return -std::numeric_limits<A>::infinity();
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
  void lse_pass(const T* Q, int64_t nq, const T* K, int64_t nk, int64_t D, A scale,
                Excluded excluded, A* lse) {
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

  // ---- single process: fused a2t + t2a over tiles of (audio block) x (text tile) ----------------
  //
  // Keys are the local batch, so one score family S(i, q) = s <a_i, t_q> (i audio row, q = k M + m
  // text row) carries both directions: a2t row log-sum-exps (without row i's own captions
  // q in [i M, i M + M)) and t2a column log-sum-exps. A cell is kTA audio rows x kTK text rows.
  // Per cell: S by mk::gemm_nt (all text tiles packed transposed once per pass), then one exp per
  // score (exp(S - c), c one constant per cell) feeds both the row and the column sums; cells on
  // the own-caption band, and cells whose rows/columns are too far apart for one constant (spread
  // above kSpread, see below), take the exact two-exp path. The backward recomputes S, forms
  // dS = dS_a2t + dS_t2a the same way and runs both gradient products on the same tile:
  // d audio_blk += dS T_tile, d text_tile += dS^T A_blk (mk::gemm_nn_acc).
  // Threads take work cells (a chunk of text tiles x a chunk of audio blocks) from a CellQueue:
  // the forward orders the cells of each text chunk (its column statistics; row statistics are kept
  // per text chunk and merged in chunk order), the backward also those of each audio chunk (its
  // d audio rows): no atomics, and the same bits for any thread count or schedule.
  constexpr int64_t kTK = 96;  // text rows per tile: a multiple of kGemmNV * N for every width
  constexpr int64_t kTA = 48;  // audio rows per block: a multiple of kGemmMR (12 or 6)

  // One exp per score: E = exp(x - c) with c a cell constant, and the row / column sums rescaled
  // by exp(c - stabiliser) afterwards. Exact as long as no entry that matters underflows: with
  // c - (every row's and column's stabiliser) <= kSpread, the lost entries are < e^(-87 + 40) of
  // their row's / column's largest term. Otherwise the cell uses two exps.
  template <typename A>
  constexpr A kSpread = A(40);

  template <typename A>
  struct CellBuffers {  // per thread
    std::vector<A> trows, arows, S, dA, dT;
    CellBuffers(int64_t D, bool backward)
        : arows(static_cast<size_t>(kTA * D)), S(static_cast<size_t>(kTA * kTK)) {
      if (backward) {
        trows.resize(static_cast<size_t>(kTK * D));
        dA.resize(static_cast<size_t>(kTA * D));
        dT.resize(static_cast<size_t>(kTK * D));
      }
    }
  };

  // Every text tile transposed (ntiles x D x kTK, zero padded), once per pass: the score
  // micro-kernel reads a tile as kTK-wide rows. (B M D compute-type values: the one O(B D) copy.)
  template <typename T, typename A>
  std::vector<A> pack_text_tiles(const T* text, int64_t BM, int64_t D) {
    const int64_t ntiles = (BM + kTK - 1) / kTK;
    std::vector<A> tt(static_cast<size_t>(ntiles * D * kTK));
#pragma omp parallel for schedule(static)
    for (int64_t tile = 0; tile < ntiles; ++tile) {
      const int64_t k0 = tile * kTK, kb = std::min(kTK, BM - k0);
      A* dst = tt.data() + tile * D * kTK;
      for (int64_t d0 = 0; d0 < D; d0 += 16) {  // 16 columns at a time: the writes stay in L1
        const int64_t d1 = std::min(D, d0 + 16);
        for (int64_t j = 0; j < kTK; ++j) {
          const T* src = text + (k0 + j) * D;
          for (int64_t d = d0; d < d1; ++d)
            dst[d * kTK + j] = j < kb ? static_cast<A>(cvt_in(src[d])) : A(0);
        }
      }
    }
    return tt;
  }

  // Rows r0 .. r0 + n of src (tile of `full` rows x D) in the compute type: the input itself when
  // it already is of that type and the tile is full, else converted and zero padded into buf
  // (full x D).
  template <typename T, typename A>
  const A* tile_rows(const T* src, int64_t r0, int64_t n, int64_t full, int64_t D,
                     std::vector<A>& buf) {
    if constexpr (std::is_same_v<T, A>) {
      if (n == full) return src + r0 * D;
    }
    load_rows<T, A>(src, r0, n, D, buf.data());
    std::fill(buf.begin() + n * D, buf.end(), A(0));
    return buf.data();
  }

  // Contiguous chunk c of n items split T ways: [lo, hi).
  inline std::pair<int64_t, int64_t> chunk(int64_t n, int64_t c, int64_t T) {
    return {n * c / T, n * (c + 1) / T};
  }

  // Work cells: text tiles and audio blocks are split into (at most) kChunks contiguous chunks
  // each, a fixed number (not the thread count), and cell (c, a) = text chunk c x audio chunk a.
  // CellQueue hands cells to threads as they become ready: (c, a) after (c, a - 1), and, with
  // `by_audio`, after (c - 1, a) too (a wavefront). So a text chunk (and, with by_audio, an audio
  // chunk) is worked on by one thread at a time and in a fixed order: a cell owns the statistics /
  // gradient rows it writes (no atomics), the results do not depend on the schedule or the thread
  // count, and a thread slowed down (a shared machine) simply takes fewer cells.
  constexpr int64_t kChunks = 16;

  class CellQueue {
   public:
    CellQueue(int64_t ct, int64_t ca, bool by_audio)
        : ct_(ct),
          ca_(ca),
          by_audio_(by_audio),
          next_a_(ct, 0),
          next_c_(ca, 0),
          busy_(ct, 0),
          left_(ct * ca) {}

    // The next ready cell; waits (asleep) while none is ready; false once every cell was taken.
    bool take(int64_t& c, int64_t& a) {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (left_ == 0) return false;
        for (int64_t i = 0; i < ct_; ++i) {
          const int64_t j = next_a_[i];
          if (busy_[i] || j >= ca_ || (by_audio_ && next_c_[j] != i)) continue;
          busy_[i] = 1;
          --left_;
          c = i;
          a = j;
          return true;
        }
        ready_.wait(lock);
      }
    }

    void done(int64_t c, int64_t a) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_[c] = 0;
        ++next_a_[c];
        ++next_c_[a];
      }
      ready_.notify_all();
    }

   private:
    int64_t ct_, ca_;
    bool by_audio_;
    std::vector<int64_t> next_a_, next_c_;  // cells done per text chunk / per audio chunk
    std::vector<char> busy_;                // text chunk being worked on
    int64_t left_;                          // cells not yet taken
    std::mutex mu_;
    std::condition_variable ready_;
  };

  template <typename A>
  using VecT = typename mk::Vec<A>::type;
  template <typename A>
  constexpr int kVN = mk::Vec<A>::N;
  template <typename A>
  constexpr int kRowVecs = static_cast<int>(kTK) / kVN<A>;

  template <typename A>
  inline VecT<A> exp_vec(VecT<A> x) {
    if constexpr (std::is_same_v<A, float>) {
      typedef int32_t I __attribute__((vector_size(mk::kVecBytes)));
      return vexp_vec<VecT<A>, I>(x);
    } else {
      for (int l = 0; l < kVN<A>; ++l) x[l] = std::exp(x[l]);
      return x;
    }
  }
  template <typename A>
  inline A hmax(VecT<A> v) {
    A m = v[0];
    for (int l = 1; l < kVN<A>; ++l) m = std::max(m, v[l]);
    return m;
  }
  template <typename A>
  inline A hsum(VecT<A> v) {
    A s = 0;
    for (int l = 0; l < kVN<A>; ++l) s += v[l];
    return s;
  }
  template <typename A>
  inline VecT<A> vmax(VecT<A> a, VecT<A> b) {
    return a > b ? a : b;
  }

  // Does audio block [i0, i0 + n) own a caption in text tile [k0, k0 + kb)?
  inline bool on_band(int64_t i0, int64_t n, int64_t k0, int64_t kb, int64_t M) {
    return i0 * M < k0 + kb && (i0 + n) * M > k0;
  }

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
              for (int64_t j = 0; j < kTK; ++j)
                beta[j] = j < kb ? cg[j] * vexp(cst - ccl[j]) : A(0);
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
                  p[j] =
                      ga[pm] * (vexp(s - pair_lse[pm]) - A(1)) + cg[j] * (vexp(s - ccl[j]) - A(1));
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
      fused_forward<T, A>(audio, p.B, text, M, D, scale, row_lse, col_lse);
    } else {
      lse_pass<T, A>(
          audio, p.B, static_cast<const T*>(p.text_all), p.G * M, D, scale,
          [&](int64_t i) {
            return std::pair<int64_t, int64_t>{(i + p.offset) * M, (i + p.offset + 1) * M};
          },
          row_lse);
      lse_pass<T, A>(
          text, BM, static_cast<const T*>(p.audio_all), p.G, D, scale,
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
        A sum =
            std::exp(pos - mx) + (row_lse[i] == neg_inf<A>() ? A(0) : std::exp(row_lse[i] - mx));
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
    const A* ga = gt;        // (B, M) a2t upstream gradients
    const A* gtt = gt + BM;  // (B, M) t2a upstream gradients

    // a2t: dS(i, q) = own ? g_a[i, j] (exp(S - pair_lse) - 1) : w_i exp(S - row_lse_i)
    std::vector<A> w(B);
    for (int64_t i = 0; i < B; ++i) {
      A acc = 0;
      if (row_lse[i] != neg_inf<A>())
        for (int64_t j = 0; j < M; ++j)
          acc += ga[i * M + j] * std::exp(row_lse[i] - pair_lse[i * M + j]);
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
      dscale += fused_backward<T, A>(audio, B, text, M, D, scale, ga, gtt, row_lse, pair_lse,
                                     col_lse, w.data(), d_audio, d_text);
    } else {
      d_audio_all.assign(G * D, A(0));
      d_text_all.assign(G * M * D, A(0));
      dscale += grad_query_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_audio);
      grad_key_pass<T, A>(audio, B, text_all, G * M, D, scale, coef_a2t, d_text_all.data());
      dscale += grad_query_pass<T, A>(text, BM, audio_all, G, D, scale, coef_t2a, d_text);
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

void contrastive_forward_cpu(DType dtype, const ContrastParams& p, const ContrastForward& f) {
  switch (dtype) {
    case DType::kFloat32:
      forward<float>(p, f);
      break;
    case DType::kFloat16:
      forward<fp16_t>(p, f);
      break;
    case DType::kBFloat16:
      forward<bf16_t>(p, f);
      break;
    case DType::kFloat64:
      forward<double>(p, f);
      break;
  }
}

void contrastive_backward_cpu(DType dtype, const ContrastParams& p, const ContrastBackward& g) {
  switch (dtype) {
    case DType::kFloat32:
      backward<float>(p, g);
      break;
    case DType::kFloat16:
      backward<fp16_t>(p, g);
      break;
    case DType::kBFloat16:
      backward<bf16_t>(p, g);
      break;
    case DType::kFloat64:
      backward<double>(p, g);
      break;
  }
}

AF2_ISA_END
}  // namespace af2
