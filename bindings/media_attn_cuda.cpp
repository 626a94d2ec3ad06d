// CUDA registration of media cross-attention: checks (media_attn_args.h), device guard,
// launches on the current stream. Ranges are clamped in the kernels, not read on the host
// (that would synchronise every call). The backward's scratch (Delta, key ranges per query
// tile) comes from the caching allocator.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>

#include "bindings/media_attn_args.h"

namespace af2::bind {
namespace {

void check_launch(int rc, const char* what, int64_t D) {
  TORCH_CHECK(rc != static_cast<int>(cudaErrorInvalidValue), "media_cross_attention: head dim ", D,
              " is not supported on CUDA (at most 256)");
  TORCH_CHECK(rc == 0, "media_cross_attention: CUDA ", what,
              " failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

// AF2_MEDIA_ATTN_BACKWARD selects the backward kernels, read at every call so that a process
// can compare both: "tc" (default; tensor cores for bf16/fp16 with head dim 64 or 128, the
// generic kernels otherwise) or "simt" (always the generic warp-per-row kernels).
MediaAttnBackwardPath backward_path() {
  const char* env = std::getenv("AF2_MEDIA_ATTN_BACKWARD");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "tc") == 0)
    return MediaAttnBackwardPath::kTensorCore;
  TORCH_CHECK_VALUE(std::strcmp(env, "simt") == 0,
                    "media_cross_attention: AF2_MEDIA_ATTN_BACKWARD must be 'tc' or 'simt', got '",
                    env, "'");
  return MediaAttnBackwardPath::kSimt;
}

struct CudaBackend {
  static void forward(const MediaAttnCall& call, MediaAttnForward& f) {
    const c10::cuda::CUDAGuard guard(call.q.device());
    check_launch(media_attn_forward_cuda(call.dtype, call.params, f,
                                         c10::cuda::getCurrentCUDAStream().stream()),
                 "forward", call.params.D);
  }
  static void backward(const MediaAttnCall& call, MediaAttnBackward& g, const at::Tensor& q) {
    const c10::cuda::CUDAGuard guard(q.device());
    const auto& p = call.params;
    const MediaAttnBackwardPath path = backward_path();
    const auto bytes =
        static_cast<int64_t>(media_attn_backward_cuda_workspace_bytes(call.dtype, p));
    at::Tensor workspace = at::empty({bytes}, q.options().dtype(at::kByte));
    check_launch(media_attn_backward_cuda(call.dtype, p, g, path, workspace.mutable_data_ptr(),
                                          c10::cuda::getCurrentCUDAStream().stream()),
                 "backward", p.D);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CUDA, m) {
  m.impl("media_cross_attention", &media_attn_forward_op<CudaBackend>);
  m.impl("media_cross_attention_backward", &media_attn_backward_op<CudaBackend>);
}

}  // namespace af2::bind
