// Tanh-gated residual, torch-free kernel interface:  out = x + tanh(gate) * y.
// x, y, out: n contiguous elements of one dtype; gate: one scalar (given as float/double).
// Backward: grad_x = grad (no kernel), grad_y = tanh(gate) * grad,
//           grad_gate = (1 - tanh(gate)^2) * sum(grad * y), accumulated in double.
#pragma once

#include <cstdint>

#include "common/dtype.h"

// The *_cpu entry points are dispatched (csrc/cpu/dispatch.cpp): each CPU variant defines its own
// copy in af2::<variant> (common/isa.h), and af2::*_cpu calls the one chosen at run time.
namespace af2 {

void gated_residual_forward_cpu(DType dtype, const void* x, const void* y, double gate, void* out,
                                int64_t n);
// Writes grad_y (n elements) and returns sum(grad * y).
double gated_residual_backward_cpu(DType dtype, const void* grad, const void* y, double gate,
                                   void* grad_y, int64_t n);

#ifdef AF2_WITH_CUDA
// gate is read on the device (a 1-element tensor of gate_dtype), so no host sync is needed.
int gated_residual_forward_cuda(DType dtype, const void* x, const void* y, const void* gate,
                                DType gate_dtype, void* out, int64_t n, void* stream);
// grad_gate_acc: one double on the device, zeroed by the caller; receives
// (1 - tanh(gate)^2) * sum(grad * y).
int gated_residual_backward_cuda(DType dtype, const void* grad, const void* y, const void* gate,
                                 DType gate_dtype, void* grad_y, double* grad_gate_acc, int64_t n,
                                 void* stream);
#endif

}  // namespace af2
