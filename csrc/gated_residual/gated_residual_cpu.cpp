// Tanh-gated residual, CPU kernels.
// What: out = x + tanh(g) y; backward grad_y = tanh(g) grad and sum(grad * y) for grad_gate.
// How:  one pass each, OpenMP over contiguous chunks, `omp simd` inner loops; the reduction
//       sums float partials of 4096-element chunks in double.
// Assumes: contiguous inputs of one dtype.
#include <algorithm>
#include <cmath>

#include "common/dtype_dispatch.h"
#include "gated_residual/gated_residual.h"

namespace af2 {
AF2_ISA_BEGIN  // compiled once per CPU variant (common/isa.h)
    namespace {
  template <typename T>
  void forward(const T* x, const T* y, double gate, T* out, int64_t n) {
    using A = typename AccOf<T>::type;
    const A t = static_cast<A>(std::tanh(gate));
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = cvt_out<T, A>(cvt_in(x[i]) + t * cvt_in(y[i]));
  }

  template <typename T>
  double backward(const T* grad, const T* y, double gate, T* grad_y, int64_t n) {
    using A = typename AccOf<T>::type;
    const A t = static_cast<A>(std::tanh(gate));
    constexpr int64_t kChunk = 4096;  // float partial sums per chunk, added up in double
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t end = std::min(n, (c + 1) * kChunk);
      A part = 0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = c * kChunk; i < end; ++i) {
        const A g = cvt_in(grad[i]);
        grad_y[i] = cvt_out<T, A>(t * g);
        part += g * cvt_in(y[i]);
      }
      total += part;
    }
    return total;
  }

}  // namespace

void gated_residual_forward_cpu(DType dtype, const void* x, const void* y, double gate, void* out,
                                int64_t n) {
  dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    forward(static_cast<const T*>(x), static_cast<const T*>(y), gate, static_cast<T*>(out), n);
  });
}

double gated_residual_backward_cpu(DType dtype, const void* grad, const void* y, double gate,
                                   void* grad_y, int64_t n) {
  return dispatch_dtype(dtype, 0.0, [&](auto t) {
    using T = decltype(t);
    return backward(static_cast<const T*>(grad), static_cast<const T*>(y), gate,
                    static_cast<T*>(grad_y), n);
  });
}

AF2_ISA_END
}  // namespace af2
