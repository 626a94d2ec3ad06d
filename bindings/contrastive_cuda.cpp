// CUDA registration of the contrastive loss: the logit scale stays on the device (converted to
// the compute dtype), so neither direction synchronises with the host.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>

#include "bindings/contrastive_args.h"

namespace af2::bind {
namespace {

void check(int rc, int64_t D) {
  TORCH_CHECK(rc != static_cast<int>(cudaErrorInvalidValue), "contrastive_loss: D = ", D,
              " is not supported on CUDA (at most 1024)");
  TORCH_CHECK(rc == 0, "contrastive_loss: CUDA launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

// AF2_CONTRASTIVE_KERNEL, read on every call so that one process can compare both paths: "tc"
// (default; tensor cores for bf16/fp16 with D % 16 == 0, D <= 1024, 16-byte aligned rows; SIMT
// otherwise) or "simt" (always the SIMT kernels).
bool tensor_cores_requested() {
  const char* env = std::getenv("AF2_CONTRASTIVE_KERNEL");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "tc") == 0) return true;
  TORCH_CHECK_VALUE(std::strcmp(env, "simt") == 0,
                    "contrastive_loss: AF2_CONTRASTIVE_KERNEL must be 'tc' or 'simt', got '", env,
                    "'");
  return false;
}

struct CudaBackend {
  static void forward(ContrastCall& call, const ContrastForward& f) {
    const c10::cuda::CUDAGuard guard(call.audio.device());
    call.params.tensor_cores = tensor_cores_requested();
    call.scale = call.scale.to(call.audio.device(), call.acc).contiguous();
    call.params.scale_device = call.scale.const_data_ptr();
    check(contrastive_forward_cuda(call.dtype, call.params, f,
                                   c10::cuda::getCurrentCUDAStream().stream()),
          call.params.D);
  }
  static void backward(ContrastCall& call, const ContrastBackward& g) {
    const c10::cuda::CUDAGuard guard(call.audio.device());
    call.params.tensor_cores = tensor_cores_requested();
    call.scale = call.scale.to(call.audio.device(), call.acc).contiguous();
    call.params.scale_device = call.scale.const_data_ptr();
    check(contrastive_backward_cuda(call.dtype, call.params, g,
                                    c10::cuda::getCurrentCUDAStream().stream()),
          call.params.D);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CUDA, m) {
  m.impl("contrastive_loss", &contrastive_forward_op<CudaBackend>);
  m.impl("contrastive_loss_backward", &contrastive_backward_op<CudaBackend>);
}

}  // namespace af2::bind
