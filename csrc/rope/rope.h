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

namespace af2 {

struct RopeTensor {
  const void* in;   // (B, S, H, D) input
  void* out;        // (B, S, H, D) output
  int64_t H;
  int64_t in_sb, in_ss, in_sh;    // element strides of the input
  int64_t out_sb, out_ss, out_sh; // element strides of the output
};

struct RopeParams {
  int64_t B = 0, S = 0, D = 0;
  int64_t window_size = 1;
  int64_t num_windows = 0;           // W = S / window_size
  const void* window_offsets = nullptr;  // (B, W), contiguous, int32 or int64; may be null
  bool offsets_int64 = true;
  double base = 4096.0;
  int64_t rotary_dim = 0;            // even, <= D
  bool interleaved = false;
  float sign = 1.0f;                 // +1 forward rotation, -1 inverse (backward)
};

// theta_i for i < rotary_dim / 2, as every backend computes it.
float rope_theta(double base, int64_t i, int64_t rotary_dim);

// Rotates one or two tensors that share B, S, D and the positions (q and k).
// Returns 0 on success, or a nonzero code if an offset gives a position outside [0, 2^24):
// 1 = negative position, 2 = position too large to be exact in float32.
int rope_windowed_cpu(DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors);

#ifdef AF2_WITH_CUDA
// CUDA launch; stream is a cudaStream_t. Returns a cudaError_t as int (0 = success).
int rope_windowed_cuda(DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors,
                       void* stream);
#endif

}  // namespace af2
