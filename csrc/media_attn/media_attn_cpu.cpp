// Media cross-attention, CPU kernels (forward and backward).
//
// What: softmax(scale * q k^T) v over each query's key range [key_start, key_end) and the
//       key padding mask (media_attn.h has the contract), never materialising Lq x Lk.
// How:  forward: OpenMP over (batch, head, block of kQB queries). A task loads its queries
//       once, takes the union of their key ranges, and walks it in tiles of kKB keys: the tile
//       of K (transposed) and V is converted to float once and shared by all queries of the
//       block; scores are a small GEMM vectorised over keys, the online softmax keeps a running
//       max and sum per query (vectorised exp, common/vexp.h), and P V is vectorised over D.
//       Tiles that no query of the block attends are skipped, so the cost follows the keys
//       actually attended. Backward: OpenMP over (batch, head); each task owns its dK/dV rows
//       (float accumulators), recomputes P = exp(s - lse) tile by tile, and forms
//       dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)), dQ += scale dS K,
//       dK += scale dS^T Q.
// Assumes: unit stride along D; ranges already checked (media_attn_check_ranges).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/vexp.h"
#include "media_attn/media_attn.h"

namespace af2 {
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

// Scores S (n x kKB) = Q (n x D) K^T, with K^T given as KT (D x kKB); masked entries -inf.
template <typename A>
void tile_scores(const A* Q, const A* KT, int64_t n, int64_t kb, int64_t D, int64_t t0,
                 const RowRange* rr, const uint8_t* pad, A* S) {
  for (int64_t r = 0; r < n; ++r) {
    A* s = S + r * kKB;
    for (int64_t j = 0; j < kKB; ++j) s[j] = 0;
    for (int64_t d = 0; d < D; ++d) {
      const A qd = Q[r * D + d];
      const A* kt = KT + d * kKB;
#pragma omp simd
      for (int64_t j = 0; j < kKB; ++j) s[j] += qd * kt[j];
    }
    const int64_t lo = rr[r].start - t0, hi = rr[r].end - t0;
    for (int64_t j = 0; j < kKB; ++j) {
      const bool valid = j < kb && j >= lo && j < hi && (pad == nullptr || pad[t0 + j]);
      s[j] = valid ? s[j] : -std::numeric_limits<A>::infinity();
    }
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
          for (int64_t j = 0; j < kb; ++j) mx = std::max(mx, s[j]);
          if (mx == -inf) continue;  // no attended key of this tile
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
          for (int64_t j = 0; j < kb; ++j) {
            const A pj = s[j];
            if (pj == A(0)) continue;
            const A* vj = V.data() + j * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) a[d] += pj * vj[d];
          }
        }
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
          for (int64_t r = 0; r < n; ++r) {
            A* pr = P.data() + r * kKB;
#pragma omp simd
            for (int64_t j = 0; j < kKB; ++j) pr[j] = vexp(pr[j] * scale - lse[r]);
          }
          // dP = dO V^T (vectorised over keys), then dS = P (dP - Di).
          for (int64_t r = 0; r < n; ++r) {
            A* ds = dS.data() + r * kKB;
            for (int64_t j = 0; j < kKB; ++j) ds[j] = 0;
            for (int64_t d = 0; d < D; ++d) {
              const A od = dO[r * D + d];
              const A* vt = VT.data() + d * kKB;
#pragma omp simd
              for (int64_t j = 0; j < kKB; ++j) ds[j] += od * vt[j];
            }
            const A* pr = P.data() + r * kKB;
#pragma omp simd
            for (int64_t j = 0; j < kKB; ++j) ds[j] = pr[j] * (ds[j] - Di[r]);
          }
          // dV += P^T dO, dK += scale dS^T Q (rows of this tile), dQ += scale dS K.
          for (int64_t j = 0; j < kb; ++j) {
            A* dv = dV.data() + (t0 + j) * D;
            A* dk = dK.data() + (t0 + j) * D;
            for (int64_t r = 0; r < n; ++r) {
              const A pj = P[r * kKB + j], dsj = dS[r * kKB + j] * scale;
              if (pj == A(0)) continue;
              const A* go = dO.data() + r * D;
              const A* qr = Q.data() + r * D;
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) {
                dv[d] += pj * go[d];
                dk[d] += dsj * qr[d];
              }
            }
          }
          for (int64_t r = 0; r < n; ++r) {
            A* dq = dQ.data() + r * D;
            for (int64_t j = 0; j < kb; ++j) {
              const A dsj = dS[r * kKB + j] * scale;
              if (dsj == A(0)) continue;
              const A* kj = K.data() + j * D;
#pragma omp simd
              for (int64_t d = 0; d < D; ++d) dq[d] += dsj * kj[d];
            }
          }
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

}  // namespace af2
