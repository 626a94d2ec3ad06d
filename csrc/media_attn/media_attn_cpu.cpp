// Media cross-attention, CPU kernels (forward and backward).
//
// What: softmax(scale * q k^T) v over each query's key range [key_start, key_end) and the
//       key padding mask (media_attn.h has the contract), never materialising Lq x Lk.
// How:  forward: OpenMP over (batch, head, block of kQB queries). A task loads its queries
//       once, takes the union of their key ranges, and walks it in tiles of kKB keys: the tile
//       of K (transposed) and V is converted to float once and shared by all queries of the
//       block; S = Q K^T and acc += P V are register-blocked micro-kernels
//       (common/microkernels.h), and the online softmax keeps a running max and sum per query
//       (vectorised exp, common/vexp.h).
//       Tiles that no query of the block attends are skipped, so the cost follows the keys
//       actually attended. Backward: OpenMP over (batch, head); each task owns its dK/dV rows
//       (float accumulators), recomputes P = exp(s - lse) tile by tile, and forms
//       dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)), dQ += scale dS K,
//       dK += scale dS^T Q. The tile products are register-blocked micro-kernels
//       (common/microkernels.h).
// Assumes: unit stride along D; 0 <= start <= end <= Lk (checked by the bindings).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/microkernels.h"
#include "common/vexp.h"
#include "media_attn/media_attn.h"

namespace af2 {
AF2_ISA_BEGIN  // compiled once per CPU variant (common/isa.h)
namespace {

constexpr int64_t kQB = 32;  // queries per forward task
constexpr int64_t kKB = 64;  // keys per tile

template <typename T> inline const T* row_ptr(const BLHD& t, int64_t b, int64_t l, int64_t h) {
  return static_cast<const T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
}
template <typename T> inline T* row_ptr(const BLHDOut& t, int64_t b, int64_t l, int64_t h) {
  return static_cast<T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
}

// rows [l0, l0 + n) of head h of batch b into dst (n x D), times mult.
template <typename T, typename A>
void load_rows(const BLHD& t, int64_t b, int64_t l0, int64_t n, int64_t h, int64_t D, A mult, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* src = row_ptr<T>(t, b, l0 + r, h);
    A* out = dst + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) out[d] = cvt_in(src[d]) * mult;
  }
}

// rows [l0, l0 + n) transposed into dst (D x kKB).
template <typename T, typename A>
void load_rows_transposed(const BLHD& t, int64_t b, int64_t l0, int64_t n, int64_t h, int64_t D, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* src = row_ptr<T>(t, b, l0 + r, h);
    for (int64_t d = 0; d < D; ++d) dst[d * kKB + r] = cvt_in(src[d]);
  }
}

struct RowRange {
  int64_t start, end;  // clamped, start >= end means empty
};

// Scores S (n x kKB) = Q (n x D) K^T with K^T given as KT (D x kKB), then masked entries set
// to -inf: keys past the tile (kb), outside the row's range, or padded.
template <typename A>
void tile_scores(const A* Q, const A* KT, int64_t n, int64_t kb, int64_t D, int64_t t0,
                 const RowRange* rr, const uint8_t* pad, A* S) {
  mk::scores_tile<A, kKB>(Q, KT, n, D, S);
  uint8_t key_ok[kKB];
  for (int64_t j = 0; j < kKB; ++j) key_ok[j] = j < kb && (pad == nullptr || pad[t0 + j]);
  for (int64_t r = 0; r < n; ++r) {
    A* s = S + r * kKB;
    const int64_t lo = rr[r].start - t0, hi = rr[r].end - t0;
#pragma omp simd
    for (int64_t j = 0; j < kKB; ++j)
      s[j] = (key_ok[j] && j >= lo && j < hi) ? s[j] : -std::numeric_limits<A>::infinity();
  }
}

inline bool tile_needed(const RowRange* rr, int64_t n, int64_t t0, int64_t t1) {
  for (int64_t r = 0; r < n; ++r)
    if (rr[r].start < rr[r].end && rr[r].start < t1 && rr[r].end > t0) return true;
  return false;
}

template <typename T>
void forward(const MediaAttnParams& p, const MediaAttnForward& f) {
  using A = typename AccOf<T>::type;
  const int64_t D = p.D, nqb = (p.Lq + kQB - 1) / kQB, tasks = p.B * p.H * nqb;
  const A inf = std::numeric_limits<A>::infinity();
#pragma omp parallel
  {
    std::vector<A> Q(kQB * D), KT(D * kKB), V(kKB * D), S(kQB * kKB), acc(kQB * D), m(kQB), l(kQB);
    std::vector<RowRange> rr(kQB);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t qb = task % nqb, h = (task / nqb) % p.H, b = task / (nqb * p.H);
      const int64_t i0 = qb * kQB, n = std::min(kQB, p.Lq - i0);
      const uint8_t* pad = p.key_padding ? p.key_padding + b * p.Lk : nullptr;
      int64_t lo = p.Lk, hi = 0;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t s = std::max<int64_t>(0, p.key_start[b * p.Lq + i0 + r]);
        const int64_t e = std::min<int64_t>(p.Lk, p.key_end[b * p.Lq + i0 + r]);
        rr[r] = RowRange{s, e};
        if (s < e) lo = std::min(lo, s), hi = std::max(hi, e);
      }
      std::fill(acc.begin(), acc.end(), A(0));
      std::fill(m.begin(), m.end(), -inf);
      std::fill(l.begin(), l.end(), A(0));
      if (lo < hi) load_rows<T, A>(p.q, b, i0, n, h, D, static_cast<A>(p.scale), Q.data());
      for (int64_t t0 = lo; t0 < hi; t0 += kKB) {
        const int64_t kb = std::min(kKB, hi - t0);
        if (!tile_needed(rr.data(), n, t0, t0 + kb)) continue;
        load_rows_transposed<T, A>(p.k, b, t0, kb, h, D, KT.data());
        load_rows<T, A>(p.v, b, t0, kb, h, D, A(1), V.data());
        tile_scores(Q.data(), KT.data(), n, kb, D, t0, rr.data(), pad, S.data());
        for (int64_t r = 0; r < n; ++r) {
          A* s = S.data() + r * kKB;
          A mx = -inf;
#pragma omp simd reduction(max : mx)
          for (int64_t j = 0; j < kKB; ++j) mx = std::max(mx, s[j]);
          if (mx == -inf) {  // no attended key in this tile: P = 0, state unchanged
            std::fill(s, s + kKB, A(0));
            continue;
          }
          const A m_new = std::max(m[r], mx);
          const A alpha = vexp(m[r] - m_new);
          A sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < kKB; ++j) {
            s[j] = vexp(s[j] - m_new);
            sum += s[j];
          }
          l[r] = l[r] * alpha + sum;
          m[r] = m_new;
          A* a = acc.data() + r * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) a[d] *= alpha;
        }
        // acc += P V for every row (a row with no key in this tile has P = 0).
        mk::axpy_rows<A>(acc.data(), S.data(), kKB, 1, V.data(), n, kb, D);
      }
      for (int64_t r = 0; r < n; ++r) {
        T* out = row_ptr<T>(f.out, b, i0 + r, h);
        const A inv = l[r] > A(0) ? A(1) / l[r] : A(0);
        const A* a = acc.data() + r * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) out[d] = cvt_out<T, A>(a[d] * inv);
        static_cast<A*>(f.lse)[(b * p.H + h) * p.Lq + i0 + r] = l[r] > A(0) ? m[r] + std::log(l[r]) : inf;
      }
    }
  }
}

template <typename T>
void backward(const MediaAttnParams& p, const MediaAttnBackward& g) {
  using A = typename AccOf<T>::type;
  const int64_t D = p.D, Lk = p.Lk;
  const A scale = static_cast<A>(p.scale);
#pragma omp parallel
  {
    std::vector<A> Q(kQB * D), dO(kQB * D), dQ(kQB * D), K(kKB * D), KT(D * kKB), VT(D * kKB), P(kQB * kKB),
        dS(kQB * kKB), Di(kQB), lse(kQB), dK(Lk * D), dV(Lk * D);
    std::vector<RowRange> rr(kQB);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < p.B * p.H; ++task) {
      const int64_t h = task % p.H, b = task / p.H;
      const uint8_t* pad = p.key_padding ? p.key_padding + b * Lk : nullptr;
      std::fill(dK.begin(), dK.end(), A(0));
      std::fill(dV.begin(), dV.end(), A(0));
      for (int64_t i0 = 0; i0 < p.Lq; i0 += kQB) {
        const int64_t n = std::min(kQB, p.Lq - i0);
        int64_t lo = Lk, hi = 0;
        for (int64_t r = 0; r < n; ++r) {
          const int64_t s = std::max<int64_t>(0, p.key_start[b * p.Lq + i0 + r]);
          const int64_t e = std::min<int64_t>(Lk, p.key_end[b * p.Lq + i0 + r]);
          rr[r] = RowRange{s, e};
          if (s < e) lo = std::min(lo, s), hi = std::max(hi, e);
        }
        std::fill(dQ.begin(), dQ.end(), A(0));
        if (lo < hi) {
          load_rows<T, A>(p.q, b, i0, n, h, D, A(1), Q.data());
          load_rows<T, A>(g.grad_out, b, i0, n, h, D, A(1), dO.data());
          for (int64_t r = 0; r < n; ++r) {
            const T* o = row_ptr<T>(g.out, b, i0 + r, h);
            const A* go = dO.data() + r * D;
            A acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t d = 0; d < D; ++d) acc += go[d] * cvt_in(o[d]);
            Di[r] = acc;
            lse[r] = static_cast<const A*>(g.lse)[(b * p.H + h) * p.Lq + i0 + r];
          }
        }
        for (int64_t t0 = lo; t0 < hi; t0 += kKB) {
          const int64_t kb = std::min(kKB, hi - t0);
          if (!tile_needed(rr.data(), n, t0, t0 + kb)) continue;
          load_rows<T, A>(p.k, b, t0, kb, h, D, A(1), K.data());
          load_rows_transposed<T, A>(p.k, b, t0, kb, h, D, KT.data());
          load_rows_transposed<T, A>(p.v, b, t0, kb, h, D, VT.data());
          // P = exp(scale q k - lse) (0 where masked); the scale is applied to the scores.
          tile_scores(Q.data(), KT.data(), n, kb, D, t0, rr.data(), pad, P.data());
          // dP = dO V^T, then dS = scale P (dP - Di).
          mk::scores_tile<A, kKB>(dO.data(), VT.data(), n, D, dS.data());
          for (int64_t r = 0; r < n; ++r) {
            A* pr = P.data() + r * kKB;
            A* ds = dS.data() + r * kKB;
            const A lr = lse[r], dr = Di[r];
#pragma omp simd
            for (int64_t j = 0; j < kKB; ++j) {
              pr[j] = pr[j] == -std::numeric_limits<A>::infinity() ? A(0) : vexp(pr[j] * scale - lr);
              ds[j] = pr[j] * (ds[j] - dr) * scale;
            }
          }
          // dV += P^T dO and dK += dS^T Q for the tile's keys; dQ += dS K.
          mk::axpy_rows<A>(dV.data() + t0 * D, P.data(), 1, kKB, dO.data(), kb, n, D);
          mk::axpy_rows<A>(dK.data() + t0 * D, dS.data(), 1, kKB, Q.data(), kb, n, D);
          mk::axpy_rows<A>(dQ.data(), dS.data(), kKB, 1, K.data(), n, kb, D);
        }
        for (int64_t r = 0; r < n; ++r) {
          T* dq = row_ptr<T>(g.dq, b, i0 + r, h);
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) dq[d] = cvt_out<T, A>(dQ[r * D + d]);
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
void dispatch(DType dtype, Args&&... args) {
  switch (dtype) {
    case DType::kFloat32: Fn<float>::run(args...); break;
    case DType::kFloat16: Fn<fp16_t>::run(args...); break;
    case DType::kBFloat16: Fn<bf16_t>::run(args...); break;
    case DType::kFloat64: Fn<double>::run(args...); break;
  }
}
template <typename T> struct Forward { static void run(const MediaAttnParams& p, const MediaAttnForward& f) { forward<T>(p, f); } };
template <typename T> struct Backward { static void run(const MediaAttnParams& p, const MediaAttnBackward& g) { backward<T>(p, g); } };

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
