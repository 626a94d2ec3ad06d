// rope_windowed_cpu against a straightforward double-precision implementation of docs/design.md's
// formula: odd shapes, both pair layouts, offsets with gaps, q+k in one call, strided input,
// the inverse rotation, and the offset range errors.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "rope/rope.h"
#include "tests/check.h"

using namespace af2;

namespace {

template <typename T>
DType dtype_of();
template <>
DType dtype_of<float>() {
  return DType::kFloat32;
}
template <>
DType dtype_of<fp16_t>() {
  return DType::kFloat16;
}
template <>
DType dtype_of<bf16_t>() {
  return DType::kBFloat16;
}
template <>
DType dtype_of<double>() {
  return DType::kFloat64;
}

struct Case {
  int64_t B, W, ws, H, D, rd;
  bool interleaved, offsets;
  float sign;
};

// Naive oracle: one element at a time, angle formed in float32 as the spec says.
void oracle(const Case& c, const std::vector<double>& x, const std::vector<int64_t>& off,
            std::vector<double>& y) {
  const int64_t S = c.W * c.ws, half = c.rd / 2;
  y = x;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t p = c.offsets ? off[b * c.W + s / c.ws] + s % c.ws : s;
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const float theta = static_cast<float>(std::pow(4096.0, -2.0 * i / c.rd));
          const double a = static_cast<double>(static_cast<float>(p) * theta);
          const int64_t i1 = c.interleaved ? 2 * i : i, i2 = c.interleaved ? 2 * i + 1 : i + half;
          const int64_t base = ((b * S + s) * c.H + h) * c.D;
          const double x1 = x[base + i1], x2 = x[base + i2], sn = c.sign * std::sin(a);
          y[base + i1] = x1 * std::cos(a) - x2 * sn;
          y[base + i2] = x2 * std::cos(a) + x1 * sn;
        }
    }
}

template <typename T>
void run_case(const Case& c, double tol, const char* name) {
  const int64_t S = c.W * c.ws, n = c.B * S * c.H * c.D;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::vector<T> x(n), y(n), k_out(n);
  std::vector<double> xd(n), yd;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = store_f<T>(normal(rng));
    xd[i] = cvt_in(x[i]);
  }
  std::vector<int64_t> off(c.B * c.W);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t w = 0, pos = b * 3; w < c.W; ++w, pos += c.ws + (w * 7 + b) % 5)
      off[b * c.W + w] = pos;
  oracle(c, xd, off, yd);

  RopeParams p;
  p.B = c.B;
  p.S = S;
  p.D = c.D;
  p.window_size = c.ws;
  p.num_windows = c.W;
  p.window_offsets = c.offsets ? off.data() : nullptr;
  p.offsets_int64 = true;
  p.rotary_dim = c.rd;
  p.interleaved = c.interleaved;
  p.sign = c.sign;
  const int64_t ss = c.H * c.D, sb = S * ss;
  // Two tensors in one call: the same input twice, to check the shared-table path.
  RopeTensor ts[2] = {{x.data(), y.data(), c.H, sb, ss, c.D, sb, ss, c.D},
                      {x.data(), k_out.data(), c.H, sb, ss, c.D, sb, ss, c.D}};
  AF2_EXPECT(rope_windowed_cpu(dtype_of<T>(), p, ts, 2) == 0, "%s: unexpected error code", name);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::fmax(worst, std::fabs(cvt_in(y[i]) - yd[i]) / (1.0 + std::fabs(yd[i])));
    AF2_EXPECT(std::memcmp(&y[i], &k_out[i], sizeof(T)) == 0, "%s: q and k outputs differ at %lld",
               name, (long long)i);
    if (worst > tol) break;
  }
  AF2_EXPECT(worst <= tol, "%s: max relative error %.3g > %.3g", name, worst, tol);
}

}  // namespace

// Strided input (a (B, H, S, D) buffer read as (B, S, H, D)) gives the same result as contiguous.
void strided_input_matches_contiguous() {
  const int64_t B = 2, S = 6, H = 3, D = 10;
  std::vector<float> bhsd(B * H * S * D), bshd(B * S * H * D), y1(bshd.size()), y2(bshd.size());
  for (size_t i = 0; i < bhsd.size(); ++i) bhsd[i] = std::sin(0.37f * i);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t d = 0; d < D; ++d)
          bshd[((b * S + s) * H + h) * D + d] = bhsd[((b * H + h) * S + s) * D + d];
  RopeParams p;
  p.B = B;
  p.S = S;
  p.D = D;
  p.window_size = 3;
  p.num_windows = 2;
  p.rotary_dim = 8;
  RopeTensor strided{bhsd.data(), y1.data(), H, H * S * D, D, S * D, S * H * D, H * D, D};
  RopeTensor contig{bshd.data(), y2.data(), H, S * H * D, H * D, D, S * H * D, H * D, D};
  AF2_EXPECT(rope_windowed_cpu(DType::kFloat32, p, &strided, 1) == 0, "strided: error code");
  AF2_EXPECT(rope_windowed_cpu(DType::kFloat32, p, &contig, 1) == 0, "contiguous: error code");
  AF2_EXPECT(std::memcmp(y1.data(), y2.data(), y1.size() * 4) == 0,
             "strided and contiguous results differ");
}

// Offsets that give negative or float32-inexact positions are refused with codes 1 and 2.
void offset_range_errors() {
  std::vector<float> x(2 * 4 * 1 * 4), y(x.size());
  RopeParams p;
  p.B = 2;
  p.S = 4;
  p.D = 4;
  p.window_size = 2;
  p.num_windows = 2;
  p.rotary_dim = 4;
  RopeTensor t{x.data(), y.data(), 1, 16, 4, 4, 16, 4, 4};
  int32_t neg[4] = {0, 2, -1, 5};
  p.window_offsets = neg;
  p.offsets_int64 = false;
  AF2_EXPECT(rope_windowed_cpu(DType::kFloat32, p, &t, 1) == 1, "negative offset not refused");
  int64_t big[4] = {0, 2, 0, (int64_t{1} << 24) - 1};
  p.window_offsets = big;
  p.offsets_int64 = true;
  AF2_EXPECT(rope_windowed_cpu(DType::kFloat32, p, &t, 1) == 2, "position >= 2^24 not refused");
  big[3] = (int64_t{1} << 24) - 2;
  AF2_EXPECT(rope_windowed_cpu(DType::kFloat32, p, &t, 1) == 0, "largest exact position refused");
}

int main() {
  const Case cases[] = {
      {2, 3, 37, 3, 72, 40, false, true, 1.0f},     {2, 3, 37, 3, 72, 40, true, true, 1.0f},
      {1, 4, 5, 2, 16, 16, false, false, 1.0f},     {3, 2, 4, 1, 12, 6, true, false, -1.0f},
      {2, 30, 64, 2, 256, 128, false, true, -1.0f},
  };
  for (const Case& c : cases) {
    run_case<double>(c, 1e-12, "float64");
    run_case<float>(c, 2e-6, "float32");
    run_case<fp16_t>(c, 1e-3, "float16");
    run_case<bf16_t>(c, 8e-3, "bfloat16");
  }
  strided_input_matches_contiguous();
  offset_range_errors();
  AF2_TEST_MAIN_END();
}
