// Windowed rotary position embedding (RoPE): torch-free kernel interface.
//
// x: (B, S, H, D) with element strides (sb, ss, sh) and unit stride along D.
// out: (B, S, H, D) with its own strides (unit stride along D).
// The position of token s of batch b is
//     p = window_offsets[b, s / window_size] + s % window_size      (offsets given)
//     p = s                                                          (offsets == nullptr)
// Channels c < rotary_dim are rotated in pairs by the angle sign * p * theta_i, with
//     theta_i = float(base ** (-2 i / rotary_dim)),  i < rotary_dim / 2,
// the angle formed in float32. interleaved == false pairs (i, i + rotary_dim/2) (GPT-NeoX,
// HF); true pairs (2i, 2i+1) (GPT-J). Channels c >= rotary_dim are copied unchanged.
// sign = -1 gives the inverse rotation, which is also the backward.
#pragma once

#include <cstdint>

#include "common/dtype.h"

// The *_cpu entry points are dispatched (csrc/cpu/dispatch.cpp): each CPU variant defines its own
// copy in af2::<variant> (common/isa.h), and af2::*_cpu calls the one chosen at run time.
namespace af2 {

struct RopeTensor {
  const void* in;  // (B, S, H, D) input
  void* out;       // (B, S, H, D) output
  int64_t H;
  int64_t in_sb, in_ss, in_sh;     // element strides of the input
  int64_t out_sb, out_ss, out_sh;  // element strides of the output
};

struct RopeParams {
  int64_t B = 0, S = 0, D = 0;
  int64_t window_size = 1;
  int64_t num_windows = 0;               // W = S / window_size
  const void* window_offsets = nullptr;  // (B, W), contiguous, int32 or int64; may be null
  bool offsets_int64 = true;
  double base = 4096.0;
  int64_t rotary_dim = 0;  // even, <= D
  bool interleaved = false;
  float sign = 1.0f;  // +1 forward rotation, -1 inverse (backward)
};

// Positions must lie in [0, 2^24): float32 holds every integer below 2^24 exactly, so the angle
// p * theta_i is formed from the exact position.
constexpr int64_t kRopeMaxPosition = int64_t{1} << 24;

// Range check of the positions, shared by every backend: 0 if the positions lie in [0, 2^24),
// 1 if one is negative, 2 if one is >= 2^24. With offsets, min_offset / max_offset are the
// smallest and largest entry of window_offsets (the caller reduces them where they live; pass
// has_offsets = false for an empty offsets tensor); without offsets the positions are 0..S-1.
AF2_ISA_BEGIN
inline int rope_position_code(const RopeParams& p, bool has_offsets, int64_t min_offset,
                              int64_t max_offset) {
  if (p.window_offsets == nullptr) return p.S > kRopeMaxPosition ? 2 : 0;
  if (!has_offsets) return 0;
  if (min_offset < 0) return 1;
  if (max_offset > kRopeMaxPosition - p.window_size) return 2;
  return 0;
}

// theta_i for i < rotary_dim / 2, as every backend computes it.
float rope_theta(double base, int64_t i, int64_t rotary_dim);
AF2_ISA_END

// Rotates one or two tensors that share B, S, D and the positions (q and k).
// Returns 0 on success, or a nonzero code if an offset gives a position outside [0, 2^24):
// 1 = negative position, 2 = position too large to be exact in float32.
int rope_windowed_cpu(DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors);

#ifdef AF2_WITH_CUDA
// CUDA launch; stream is a cudaStream_t. Returns a cudaError_t as int (0 = success). Positions
// are not range-checked here (they live on the device): the torch glue checks them with
// rope_position_code before the launch (bindings/rope_cuda.cpp).
int rope_windowed_cuda(DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors,
                       void* stream);
#endif

}  // namespace af2
