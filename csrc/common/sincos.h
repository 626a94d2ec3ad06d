// sin and cos of a float32 angle, evaluated in double precision with straight-line code that
// compilers vectorise inside `omp simd` loops (glibc's sinf/cosf are scalar calls).
//
// Range: |a| < 2^24 (RoPE angles p * theta with p < 2^24 and theta <= 1). Reduction by the
// nearest multiple k of pi/2 with pi/2 split in three doubles and fused multiply-adds, so
// r = a - k*pi/2 carries an error near 1e-16 even for k ~ 1e7; then the classic fdlibm
// minimax polynomials on [-pi/4, pi/4] (|error| < 1 ulp of double). Rounded to float, the
// results match a correctly rounded sinf/cosf except in rare near-tie cases.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/isa.h"

namespace af2 {
AF2_ISA_BEGIN

inline void sincos_angle(float angle, double* s_out, double* c_out) {
  constexpr double kTwoOverPi = 6.36619772367581382433e-01;
  constexpr double kPio2Hi = 1.57079632679489655800e+00;   // double(pi/2)
  constexpr double kPio2Mid = 6.12323399573676603587e-17;  // double(pi/2 - kPio2Hi)
  constexpr double kPio2Lo = -4.98931591314276896844e-34;  // the remainder
  const double x = static_cast<double>(angle);
  const double k = std::nearbyint(x * kTwoOverPi);
  double r = std::fma(-k, kPio2Hi, x);
  r = std::fma(-k, kPio2Mid, r);
  r = std::fma(-k, kPio2Lo, r);
  const double z = r * r;
  // fdlibm __kernel_sin / __kernel_cos coefficients.
  const double sp =
      -1.66666666666666324348e-01 +
      z * (8.33333333332248946124e-03 +
           z * (-1.98412698298579493134e-04 +
                z * (2.75573137070700676789e-06 +
                     z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10))));
  const double cp =
      4.16666666666666019037e-02 +
      z * (-1.38888888888741095749e-03 +
           z * (2.48015872894767294178e-05 +
                z * (-2.75573143513906633035e-07 +
                     z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11))));
  const double sr = r + r * z * sp;
  const double cr = 1.0 - 0.5 * z + z * z * cp;
  // Quadrant q = k mod 4: (sin, cos) = (s, c), (c, -s), (-s, -c), (-c, s).
  const int64_t q = static_cast<int64_t>(k) & 3;
  const double s = (q & 1) ? cr : sr;
  const double c = (q & 1) ? sr : cr;
  *s_out = (q & 2) ? -s : s;
  *c_out = ((q + 1) & 2) ? -c : c;
}

AF2_ISA_END
}  // namespace af2
