// exp(x) for float in straight-line code that compilers vectorise inside `omp simd` loops
// (std::exp is a scalar call). Cephes-style: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6
// polynomial, 2^n by building the exponent bits. Relative error about 2 ulp for
// x in [-87.3, 88.3]; below that (and for -inf) the result is exactly 0, above it +inf.
// (Softmax arguments are <= 0, well inside the range.)
// vexp_vec: the same function on a whole GCC/Clang vector of floats (any width), for kernels
// that keep their data in vector registers (the rounding uses the 1.5 * 2^23 shifter instead
// of nearbyint, 2^n is built from the shifted bits). Same results as vexp up to ~1 ulp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/isa.h"

namespace af2 {
AF2_ISA_BEGIN

inline float vexp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float xc = std::fmin(std::fmax(x, -87.3f), 88.3f);
  const float n = std::nearbyint(xc * kLog2e);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  const float y = er * scale;
  return x < -87.3f ? 0.0f : (x > 88.3f ? INFINITY : y);
}

inline double vexp(double x) {
  return std::exp(x);
}

// F: a vector of float (vector_size extension), I: the int32 vector of the same size.
template <typename F, typename I>
inline F vexp_vec(F x) {
  constexpr float kLog2e = 1.44269504088896341f, kShift = 12582912.0f;  // 1.5 * 2^23
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  F xc = x < -87.3f ? F{} - 87.3f : x;
  xc = xc > 88.3f ? F{} + 88.3f : xc;
  const F t = xc * kLog2e + kShift;  // round(xc log2 e) in the low mantissa bits
  const F n = t - kShift;
  const F r = (xc - n * kLn2Hi) - n * kLn2Lo;
  F p = F{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const F er = p * r * r + r + 1.0f;
  const I bits = ((I)t + 127) << 23;  // (n + 127) << 23: the high bits of t shift out
  const F y = er * (F)bits;
  return x < -87.3f ? F{} : (x > 88.3f ? F{} + INFINITY : y);
}

AF2_ISA_END
}  // namespace af2
