// Media cross-attention (Flamingo-style text-to-media attention with per-query key ranges):
// torch-free kernel interface.
//
// q (B, Lq, H, D); k, v (B, Lk, H, D); out (B, Lq, H, D). Query i of batch b attends keys j with
//   key_start[b, i] <= j < key_end[b, i]  and  key_padding[b, j] != 0 (when given).
// out = softmax(scale * q k^T over those keys) v; a query with no key outputs exactly 0.
// Ranges must satisfy 0 <= start <= end <= Lk (the bindings check this on the CPU).
// lse (B, H, Lq) (float32; float64 for float64 inputs) holds the natural-log sum-exp of the scaled
// scores for the backward; +inf marks a query with no key (so exp(s - lse) = 0 and its gradients
// are 0). NaN in, NaN out: a NaN among a query's attended scores makes its output row and lse NaN
// (so the backward's p, and the gradients through it, are NaN); a query with no key still outputs
// exactly 0 and gets dq = 0 (af2/ops/media_attention.py states the whole rule). The backward
// recomputes the probabilities tile by tile from lse.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

// The *_cpu entry points are dispatched (csrc/cpu/dispatch.cpp): each CPU variant defines its own
// copy in af2::<variant> (common/isa.h), and af2::*_cpu calls the one chosen at run time.
namespace af2 {

// A (B, L, H, D) tensor with element strides for B, L, H and unit stride along D.
struct BLHD {
  const void* data;
  int64_t sb, sl, sh;
};
struct BLHDOut {
  void* data;
  int64_t sb, sl, sh;
};

struct MediaAttnParams {
  int64_t B = 0, Lq = 0, Lk = 0, H = 0, D = 0;
  BLHD q{}, k{}, v{};
  const int32_t* key_start = nullptr;    // (B, Lq), contiguous
  const int32_t* key_end = nullptr;      // (B, Lq), contiguous
  const uint8_t* key_padding = nullptr;  // (B, Lk) contiguous, nonzero = valid; may be null
  double scale = 1.0;
};

struct MediaAttnForward {
  BLHDOut out{};
  void* lse = nullptr;  // (B, H, Lq), contiguous, float32 (float64 for float64 inputs)
};

struct MediaAttnBackward {
  BLHD grad_out{}, out{};
  const void* lse = nullptr;  // (B, H, Lq), contiguous, as in MediaAttnForward
  BLHDOut dq{}, dk{}, dv{};
};

int media_attn_forward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnForward& f);
int media_attn_backward_cpu(DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g);

#ifdef AF2_WITH_CUDA
// CUDA launches; stream is a cudaStream_t. Return a cudaError_t as int (0 = success).
// The CUDA kernels clamp ranges to [0, Lk] and treat start >= end as empty.
int media_attn_forward_cuda(DType dtype, const MediaAttnParams& p, const MediaAttnForward& f,
                            void* stream);
// Which backward kernels run: kTensorCore (the default) uses the tensor-core kernels of
// media_attn_tc_bwd.cuh where they apply (bf16 / fp16, head dim 64 or 128, 16-byte aligned
// operands) and the generic SIMT kernels otherwise; kSimt always uses the generic kernels.
enum class MediaAttnBackwardPath : int { kTensorCore = 0, kSimt = 1 };
// Bytes of device scratch the backward needs (Delta = rowsum(grad_out * out) and the
// per-query-tile key ranges); any 256-byte aligned allocation of this size.
size_t media_attn_backward_cuda_workspace_bytes(DType dtype, const MediaAttnParams& p);
int media_attn_backward_cuda(DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g,
                             MediaAttnBackwardPath path, void* workspace, void* stream);
#endif

}  // namespace af2
