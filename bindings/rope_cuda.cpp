// CUDA registration of the windowed RoPE ops: checks (rope_args.h), device guard, allocation,
// launch on the current stream.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "bindings/rope_args.h"

namespace af2::bind {
namespace {

void run_cuda(const RopeCall& call) {
  const c10::cuda::CUDAGuard guard(call.inputs[0].device());
  const auto ts = rope_tensors(call);
  const int rc = rope_windowed_cuda(call.dtype, call.params, ts.data(), static_cast<int>(ts.size()),
                                    c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(rc == 0, "rope_windowed: CUDA launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

}  // namespace

TORCH_LIBRARY_IMPL(af2, CUDA, m) {
  m.impl("rope_windowed", &rope_windowed_op<run_cuda>);
  m.impl("rope_windowed_qk", &rope_windowed_qk_op<run_cuda>);
}

}  // namespace af2::bind
