// CUDA registration of the windowed RoPE ops: checks (rope_args.h), position range check,
// device guard, allocation, launch on the current stream.
//
// Position range check (docs/design.md: every op rejects out-of-range offsets): the offsets live on
// the device, so the glue reduces them there (one aminmax) and copies the two values to the host
// (16 bytes), which waits for the stream: a host-device sync per call that passes
// window_offsets (~10-20 us plus the loss of the host's run-ahead; calls without offsets check
// S on the host for free, and af2's model passes none). The check is skipped while the current
// stream is being captured into a CUDA graph (torch.cuda.graph, torch.compile's
// "reduce-overhead"), where a sync is illegal: captured calls use the positions as given, which is
// memory-safe (positions only form angles, never addresses). FakeTensor / meta tracing never
// reaches this code (register_fake in af2/ops/rope.py), so torch.compile traces without it and
// runs it, like every eager call, when the compiled graph executes outside a capture.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "bindings/rope_args.h"

namespace af2::bind {
namespace {

void check_positions_cuda(const RopeCall& call, cudaStream_t stream) {
  if (!call.offsets.defined()) {
    check_position_code(rope_position_code(call.params, false, 0, 0), call);
    return;
  }
  if (call.offsets.numel() == 0) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  const cudaError_t err = cudaStreamIsCapturing(stream, &capture);
  TORCH_CHECK(err == cudaSuccess,
              "rope_windowed: cudaStreamIsCapturing failed: ", cudaGetErrorString(err));
  if (capture != cudaStreamCaptureStatusNone) return;  // no sync allowed inside a capture
  const auto [lo, hi] = at::aminmax(call.offsets);
  const at::Tensor range = at::stack({lo, hi}).to(at::kLong).cpu();  // one device-to-host copy
  const int64_t* v = range.const_data_ptr<int64_t>();
  check_position_code(rope_position_code(call.params, true, v[0], v[1]), call);
}

void run_cuda(const RopeCall& call) {
  const c10::cuda::CUDAGuard guard(call.inputs[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  check_positions_cuda(call, stream);
  const auto ts = rope_tensors(call);
  const int rc =
      rope_windowed_cuda(call.dtype, call.params, ts.data(), static_cast<int>(ts.size()), stream);
  TORCH_CHECK(rc == 0, "rope_windowed: CUDA launch failed: ",
              cudaGetErrorString(static_cast<cudaError_t>(rc)));
}

}  // namespace

TORCH_LIBRARY_IMPL(af2, CUDA, m) {
  m.impl("rope_windowed", &rope_windowed_op<run_cuda>);
  m.impl("rope_windowed_qk", &rope_windowed_qk_op<run_cuda>);
}

}  // namespace af2::bind
