// fp16/bf16 <-> float conversions of common/dtype.h: exhaustive round trips over all 65536
// bit patterns, and round-to-nearest-even from float checked against the two neighbours.
#include <cmath>
#include <cstdint>
#include <random>

#include "common/dtype.h"
#include "tests/check.h"

using namespace af2;

template <typename H, typename FromFloat>
void check_type(const char* name, FromFloat from_float) {
  // Round trip: every non-NaN pattern survives half -> float -> half.
  for (uint32_t b = 0; b < 65536; ++b) {
    H h{static_cast<uint16_t>(b)};
    float f = to_float(h);
    if (std::isnan(f)) {
      AF2_EXPECT(std::isnan(to_float(from_float(f))), "%s NaN 0x%04x did not stay NaN", name, b);
      continue;
    }
    AF2_EXPECT(from_float(f).bits == h.bits, "%s round trip of 0x%04x gave 0x%04x", name, b,
               from_float(f).bits);
  }
  // Rounding: the result is at least as close as either neighbour, ties to even.
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-30, 15);
  for (int n = 0; n < 200000; ++n) {
    const float f = std::ldexp(mant(rng), expo(rng));
    const H h = from_float(f);
    const float r = to_float(h);
    if (std::isinf(r)) continue;
    const float up = to_float(H{static_cast<uint16_t>(h.bits + 1)});
    const float down = to_float(H{static_cast<uint16_t>(h.bits - 1)});
    const float err = std::fabs(r - f);
    // A neighbour across zero wraps to a NaN pattern: it does not compete.
    auto no_closer = [&](float n) { return std::isnan(n) || err <= std::fabs(n - f); };
    AF2_EXPECT(no_closer(up) && no_closer(down),
               "%s rounding of %.9g gave %.9g (neighbours %.9g, %.9g)", name, f, r, down, up);
    if (err == std::fabs(up - f) || err == std::fabs(down - f))
      AF2_EXPECT((h.bits & 1u) == 0 || r == 0.0f, "%s tie of %.9g not rounded to even", name, f);
  }
}

int main() {
  check_type<bf16_t>("bf16", bf16_from_float);
  check_type<fp16_t>("fp16", fp16_from_float);
  std::printf("float16 conversions: %s\n", AF2_HAVE_FLOAT16 ? "_Float16" : "portable");
  AF2_TEST_MAIN_END();
}
