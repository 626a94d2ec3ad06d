// CUDA registration of the tanh-gated residual. The gate stays on the device (a CPU gate is
// copied over), so neither direction synchronises with the host.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "bindings/gated_residual_args.h"

namespace af2::bind {
namespace {

void check(int rc) {
  TORCH_CHECK(rc == 0, "gated_residual: CUDA launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

struct CudaBackend {
  static void forward(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate,
                      at::Tensor& out) {
    const c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor g = gate.to(x.device()).contiguous();
    check(gated_residual_forward_cuda(to_af2_dtype(x.scalar_type()), x.const_data_ptr(),
                                      y.const_data_ptr(), g.const_data_ptr(),
                                      to_af2_dtype(g.scalar_type()), out.mutable_data_ptr(),
                                      x.numel(), c10::cuda::getCurrentCUDAStream().stream()));
  }
  static at::Tensor backward(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& gate,
                             at::Tensor& grad_y) {
    const c10::cuda::CUDAGuard guard(grad.device());
    const at::Tensor g = gate.to(grad.device()).contiguous();
    at::Tensor acc = at::zeros({}, grad.options().dtype(at::kDouble));
    check(gated_residual_backward_cuda(
        to_af2_dtype(grad.scalar_type()), grad.const_data_ptr(), y.const_data_ptr(),
        g.const_data_ptr(), to_af2_dtype(g.scalar_type()), grad_y.mutable_data_ptr(),
        acc.mutable_data_ptr<double>(), grad.numel(), c10::cuda::getCurrentCUDAStream().stream()));
    return acc.to(gate.device());
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CUDA, m) {
  m.impl("gated_residual", &gated_residual_op<CudaBackend>);
  m.impl("gated_residual_backward", &gated_residual_backward_op<CudaBackend>);
}

}  // namespace af2::bind
