// CPU registration of the tanh-gated residual.
#include <torch/library.h>

#include <cmath>

#include "bindings/gated_residual_args.h"

namespace af2::bind {
namespace {

struct CpuBackend {
  static void forward(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate,
                      at::Tensor& out) {
    gated_residual_forward_cpu(to_af2_dtype(x.scalar_type()), x.const_data_ptr(),
                               y.const_data_ptr(), gate.item<double>(), out.mutable_data_ptr(),
                               x.numel());
  }
  static at::Tensor backward(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& gate,
                             at::Tensor& grad_y) {
    const double g = gate.item<double>(), t = std::tanh(g);
    const double sum =
        gated_residual_backward_cpu(to_af2_dtype(grad.scalar_type()), grad.const_data_ptr(),
                                    y.const_data_ptr(), g, grad_y.mutable_data_ptr(), grad.numel());
    return at::full({}, (1.0 - t * t) * sum, gate.options().dtype(at::kDouble));
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CPU, m) {
  m.impl("gated_residual", &gated_residual_op<CpuBackend>);
  m.impl("gated_residual_backward", &gated_residual_backward_op<CpuBackend>);
}

}  // namespace af2::bind
