// Tiles of the media cross-attention CPU kernels (media_attn_cpu.cpp): tile sizes, row loads
// (converted to the compute type, optionally transposed), each query's key range, the masking
// and exp of score rows, and the ordering of the forward's tasks by cost.
// Assumes: unit stride along D (media_attn.h); compiled once per CPU variant (common/isa.h).
#pragma once

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
AF2_ISA_BEGIN
namespace media_attn_cpu {

constexpr int64_t kMR = mk::kGemmMR;                    // query rows per micro-tile (6 or 12)
constexpr int64_t kQT = 48;                             // queries per task: a multiple of kMR
constexpr int64_t kKT = mk::kVecBytes == 64 ? 96 : 48;  // keys per tile: a multiple of kMR and
                                                        // of the micro-kernel's column width
static_assert(kQT % kMR == 0 && kKT % kMR == 0, "tiles must hold whole micro-tiles");
static_assert(kKT % (mk::kGemmNV * mk::Vec<float>::N) == 0 &&
                  kKT % (mk::kGemmNV * mk::Vec<double>::N) == 0,
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
void load_rows(const BLHD& t, int64_t b, int64_t l0, int64_t n, int64_t rows, int64_t h, int64_t D,
               A mult, A* dst) {
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
inline void mask_row(A* s, const RowRange& r, int64_t t0, int64_t kb, bool tile_all_ok,
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

}  // namespace media_attn_cpu
AF2_ISA_END
}  // namespace af2
