// Torch-free scalar types shared by the CPU kernels: IEEE binary16 (fp16) and bfloat16
// stored as raw 16-bit patterns, with float conversions written so that the compiler can
// vectorise loops over them (no branches, no function calls on the hot path).
//
// The bit layouts are those of at::Half / at::BFloat16, so bindings may reinterpret
// tensor data pointers as these types.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/isa.h"

namespace af2 {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2, kFloat64 = 3 };

struct fp16_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

AF2_ISA_BEGIN

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bfloat16 <-> float: round to nearest even; NaN stays a quiet NaN.
inline float to_float(bf16_t v) {
  return bits_float(static_cast<uint32_t>(v.bits) << 16);
}
inline bf16_t bf16_from_float(float f) {
  uint32_t u = float_bits(f);
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  bool is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return bf16_t{static_cast<uint16_t>(is_nan ? ((u >> 16) | 0x40u) : rounded)};
}

// fp16 <-> float. GCC/Clang's _Float16 lowers to F16C / NEON conversions when the target
// has them; the portable bit-twiddling path is used otherwise.
#if defined(__FLT16_MAX__) && !defined(AF2_NO_FLOAT16)
#define AF2_HAVE_FLOAT16 1
inline float to_float(fp16_t v) {
  _Float16 h;
  std::memcpy(&h, &v.bits, 2);
  return static_cast<float>(h);
}
inline fp16_t fp16_from_float(float f) {
  _Float16 h = static_cast<_Float16>(f);
  fp16_t r;
  std::memcpy(&r.bits, &h, 2);
  return r;
}
#else
#define AF2_HAVE_FLOAT16 0
inline float to_float(fp16_t v) {
  uint32_t h = v.bits, sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (man << 13));             // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (man << 13));       // normal
  return (sign ? -1.0f : 1.0f) * static_cast<float>(man) * 5.9604644775390625e-8f;  // subnormal
}
inline fp16_t fp16_from_float(float f) {
  // Round to nearest even via the classic float-magic method (F. Giesen's half conversion).
  uint32_t u = float_bits(f), sign = (u >> 16) & 0x8000u;
  u &= 0x7FFFFFFFu;
  uint16_t out;
  if (u >= 0x47800000u) {  // overflow, inf or nan
    out = static_cast<uint16_t>(u > 0x7F800000u ? 0x7E00u : 0x7C00u);
  } else if (u < 0x38800000u) {  // subnormal or zero
    float g = bits_float(u) + 0.5f;
    out = static_cast<uint16_t>(float_bits(g) - float_bits(0.5f));
  } else {
    uint32_t mant_odd = (u >> 13) & 1u;
    u += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFFu + mant_odd;
    out = static_cast<uint16_t>(u >> 13);
  }
  return fp16_t{static_cast<uint16_t>(out | sign)};
}
#endif

// Store a float as T (rounding to nearest even for 16-bit types).
template <typename T>
inline T store_f(float v);
template <>
inline float store_f<float>(float v) {
  return v;
}
template <>
inline fp16_t store_f<fp16_t>(float v) {
  return fp16_from_float(v);
}
template <>
inline bf16_t store_f<bf16_t>(float v) {
  return bf16_from_float(v);
}
template <>
inline double store_f<double>(float v) {
  return v;
}

// Kernel-side conversions: the compute ("accumulate") type of a storage type is float for
// 16/32-bit storage and double for float64 (the gradcheck path).
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

inline float cvt_in(float v) {
  return v;
}
inline float cvt_in(fp16_t v) {
  return to_float(v);
}
inline float cvt_in(bf16_t v) {
  return to_float(v);
}
inline double cvt_in(double v) {
  return v;
}
template <typename T, typename A>
inline T cvt_out(A v) {
  return store_f<T>(static_cast<float>(v));
}
template <>
inline double cvt_out<double, double>(double v) {
  return v;
}

AF2_ISA_END
}  // namespace af2
