// Mapping between torch scalar types and the torch-free af2::DType of csrc/.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include "common/dtype.h"

namespace af2::bind {

inline bool is_supported_float(c10::ScalarType t) {
  return t == c10::kFloat || t == c10::kHalf || t == c10::kBFloat16 || t == c10::kDouble;
}

// The compute type of csrc's kernels for inputs of type t (AccOf, common/dtype.h): float64 for
// float64, float32 otherwise. Statistics and accumulators are allocated with it.
inline c10::ScalarType compute_dtype(c10::ScalarType t) {
  return t == c10::kDouble ? c10::kDouble : c10::kFloat;
}

inline DType to_af2_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat:
      return DType::kFloat32;
    case c10::kHalf:
      return DType::kFloat16;
    case c10::kBFloat16:
      return DType::kBFloat16;
    case c10::kDouble:
      return DType::kFloat64;
    default:
      TORCH_CHECK_VALUE(false, "af2: unsupported dtype ", t);
  }
}

}  // namespace af2::bind
