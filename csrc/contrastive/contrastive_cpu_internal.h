// Internal interface of the contrastive CPU kernels (contrastive.h has the contract): what the
// single-process path (contrastive_cpu_fused_*.cpp), the several-process passes
// (contrastive_cpu_gathered.cpp) and the entry points (contrastive_cpu.cpp) share.
// Each is compiled once per CPU variant (common/isa.h) and explicitly instantiated for the four
// storage types T (float, fp16_t, bf16_t, double); Acc<T> is the compute type (float, double
// for float64). Statistics and accumulators are compute-type arrays of contrastive.h's shapes.
#pragma once

#include <cstdint>
#include <limits>

#include "common/dtype.h"
#include "contrastive/contrastive.h"

namespace af2 {
AF2_ISA_BEGIN
namespace contrastive_cpu {

template <typename T>
using Acc = typename AccOf<T>::type;

template <typename T, typename A>
void load_rows(const T* src, int64_t r0, int64_t n, int64_t D, A* dst) {
  for (int64_t r = 0; r < n; ++r) {
    const T* s = src + (r0 + r) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) dst[r * D + d] = cvt_in(s[d]);
  }
}

template <typename A>
inline A neg_inf() {
  return -std::numeric_limits<A>::infinity();
}

// ---- one process (keys = the local batch: p.G == p.B, p.offset == 0, *_all = the local tensors)
// f.row_lse and f.col_lse, both directions in one tiled pass (contrastive_cpu_fused_fwd.cpp).
template <typename T>
void fused_lse(const ContrastParams& p, const ContrastForward& f);
// d_audio (B, D) and d_text (B M, D) += both directions' score gradients, in one tiled pass
// (contrastive_cpu_fused_bwd.cpp); w (B) = the a2t "others" weights (contrastive_cpu.cpp).
// Returns their part of d(scale).
template <typename T>
double fused_grads(const ContrastParams& p, const ContrastBackward& g, const Acc<T>* w,
                   Acc<T>* d_audio, Acc<T>* d_text);

// ---- several processes (keys = the gathered batch, contrastive_cpu_gathered.cpp)
template <typename T>
void gathered_lse(const ContrastParams& p, const ContrastForward& f);
// d_audio, d_text += the query-side gradients, d_audio_all (G, D), d_text_all (G M, D) += the
// key-side ones; returns their part of d(scale).
template <typename T>
double gathered_grads(const ContrastParams& p, const ContrastBackward& g, const Acc<T>* w,
                      Acc<T>* d_audio, Acc<T>* d_text, Acc<T>* d_audio_all, Acc<T>* d_text_all);

}  // namespace contrastive_cpu
AF2_ISA_END
}  // namespace af2
