// Pieces of the single-process contrastive CPU path (contrastive_cpu_fused_fwd.cpp and
// contrastive_cpu_fused_bwd.cpp): tile sizes, per-thread buffers, the packed text tiles, the
// work-cell queue and vector helpers.
#pragma once

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/microkernels.h"
#include "common/vexp.h"
#include "contrastive/contrastive_cpu_internal.h"

namespace af2 {
AF2_ISA_BEGIN
namespace contrastive_cpu {

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

}  // namespace contrastive_cpu
AF2_ISA_END
}  // namespace af2
