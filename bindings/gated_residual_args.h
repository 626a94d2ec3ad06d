// Checks and op entry points of the tanh-gated residual, shared by the CPU and CUDA
// registrations (each supplies its Backend).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <tuple>

#include "bindings/dtype.h"
#include "bindings/output_alloc.h"
#include "gated_residual/gated_residual.h"

namespace af2::bind {

inline void check_gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate,
                                 const char* xname) {
  const char* op = "gated_residual: ";
  TORCH_CHECK_VALUE(is_supported_float(x.scalar_type()), op, xname,
                    " must be float32, float16, bfloat16 or "
                    "float64, got ",
                    x.scalar_type(), " with sizes ", x.sizes());
  TORCH_CHECK_VALUE(y.sizes() == x.sizes(), op, "y must have ", xname, "'s sizes ", x.sizes(),
                    ", got ", y.sizes());
  TORCH_CHECK_VALUE(y.scalar_type() == x.scalar_type(), op, "y has dtype ", y.scalar_type(),
                    " but ", xname, " has ", x.scalar_type());
  TORCH_CHECK_VALUE(y.device() == x.device(), op, "y is on ", y.device(), " but ", xname, " is on ",
                    x.device());
  TORCH_CHECK_VALUE(gate.numel() == 1, op, "gate must hold one element, got sizes ", gate.sizes());
  TORCH_CHECK_VALUE(is_supported_float(gate.scalar_type()), op, "gate must be a float tensor, got ",
                    gate.scalar_type());
  TORCH_CHECK_VALUE(gate.device() == x.device() || gate.device().is_cpu(), op, "gate is on ",
                    gate.device(), " but ", xname, " is on ", x.device());
}

// Backend: static forward(x, y, gate, out) and backward(grad, y, gate, grad_y) -> grad_gate.
template <typename Backend>
at::Tensor gated_residual_op(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  check_gated_residual(x, y, gate, "x");
  const at::Tensor xc = x.contiguous(), yc = y.contiguous();
  at::Tensor out = empty_output(x.sizes(), x.options());
  if (out.numel() > 0) Backend::forward(xc, yc, gate, out);
  return out;
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor> gated_residual_backward_op(const at::Tensor& grad,
                                                              const at::Tensor& y,
                                                              const at::Tensor& gate) {
  check_gated_residual(grad, y, gate, "grad");
  const at::Tensor gc = grad.contiguous(), yc = y.contiguous();
  at::Tensor grad_y = empty_output(y.sizes(), y.options());
  at::Tensor grad_gate = Backend::backward(gc, yc, gate, grad_y);
  return {grad_y, grad_gate.reshape(gate.sizes()).to(gate.scalar_type())};
}

}  // namespace af2::bind
