// Compiled once per CPU variant with the kernels (common/isa.h): what the compiler was allowed
// to use for this variant, as af2.build_info() reports it.
#include "common/dtype.h"
#include "common/isa.h"

namespace af2 {
AF2_ISA_BEGIN

// The widest vector extension the variant's compiler flags enable ("avx512+bf16", "avx2", ...).
const char* variant_vector_isa() {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  return "avx512+bf16";
#elif defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__x86_64__)
  return "sse2";
#elif defined(__ARM_FEATURE_SVE)
  return "sve";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

// fp16 <-> float conversions in hardware (F16C on x86, native on ARM) in this variant.
bool variant_float16_native() {
#if AF2_HAVE_FLOAT16 && (defined(__F16C__) || defined(__aarch64__))
  return true;
#else
  return false;
#endif
}

AF2_ISA_END
}  // namespace af2
