// Contrastive loss with M positives and M x N hard negatives: torch-free kernel interface.
//
// Local batch: audio a (B, D), text t (B, M, D), hard negatives h (B, M, N, D) (optional).
// Keys: audio_all (G, D) and text_all (G, M, D), the whole batch across processes; local row
// i is global row i + offset (single process: G = B, offset 0, *_all = the local tensors).
// With s the logit scale and S(x, y) = s <x, y>:
//   a2t term (i, j) = -S(a_i, t_ij) + log( exp S(a_i, t_ij)
//                                          + sum_{k != i+offset, m} exp S(a_i, T_km)
//                                          + sum_n exp S(a_i, h_ijn) )
//   t2a term (i, j) = -S(t_ij, a_i) + log sum_k exp S(t_ij, A_k)
//   (A = audio_all, T = text_all)
// terms (2, B, M): [0] = a2t, [1] = t2a. Statistics kept for the backward (all O(B)):
//   row_lse (B)     log sum_{k != own, m} exp S(a_i, T_km)     (-inf when there is no other row)
//   pair_lse (B, M) log of the a2t normaliser of (i, j)
//   col_lse (B, M)  log of the t2a normaliser of (i, j)
// Nothing of size (B M) x G is ever formed: scores are recomputed tile by tile.
#pragma once

#include <cstdint>

#include "common/dtype.h"

// The *_cpu entry points are dispatched (csrc/cpu/dispatch.cpp): each CPU variant defines its own
// copy in af2::<variant> (common/isa.h), and af2::*_cpu calls the one chosen at run time.
namespace af2 {

struct ContrastParams {
  int64_t B = 0, G = 0, M = 0, N = 0, D = 0, offset = 0;
  const void* audio = nullptr;         // (B, D) contiguous
  const void* text = nullptr;          // (B, M, D)
  const void* audio_all = nullptr;     // (G, D)
  const void* text_all = nullptr;      // (G, M, D)
  const void* neg = nullptr;           // (B, M, N, D) or null (N = 0)
  double scale = 1.0;                  // CPU: the logit scale
  const void* scale_device = nullptr;  // CUDA: the logit scale on the device, compute type
  bool tensor_cores = true;  // CUDA: tensor-core kernels where they apply (false: SIMT only)
};

// Outputs and statistics are of the compute type: float (double for float64 inputs).
struct ContrastForward {
  void* terms;     // (2, B, M)
  void* row_lse;   // (B)
  void* pair_lse;  // (B, M)
  void* col_lse;   // (B, M)
};

struct ContrastBackward {
  const void* grad_terms;  // (2, B, M), compute type
  const void* row_lse;
  const void* pair_lse;
  const void* col_lse;
  void* d_audio;      // (B, D), input dtype
  void* d_text;       // (B, M, D)
  void* d_audio_all;  // (G, D)
  void* d_text_all;   // (G, M, D)
  void* d_neg;        // (B, M, N, D) or null
  double* d_scale;    // one double
};

void contrastive_forward_cpu(DType dtype, const ContrastParams& p, const ContrastForward& f);
void contrastive_backward_cpu(DType dtype, const ContrastParams& p, const ContrastBackward& g);

#ifdef AF2_WITH_CUDA
int contrastive_forward_cuda(DType dtype, const ContrastParams& p, const ContrastForward& f,
                             void* stream);
// d_scale must be zeroed by the caller (device memory).
int contrastive_backward_cuda(DType dtype, const ContrastParams& p, const ContrastBackward& g,
                              void* stream);
#endif

}  // namespace af2
