// Argument checking and parameter packing for the windowed RoPE op, shared by the CPU and
// CUDA registrations. Every error names the argument and the sizes it got.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <optional>
#include <string>
#include <vector>

#include "bindings/dtype.h"
#include "bindings/output_alloc.h"
#include "rope/rope.h"

namespace af2::bind {

struct RopeCall {
  RopeParams params;
  std::vector<at::Tensor> inputs;   // unit stride along D
  std::vector<at::Tensor> outputs;  // contiguous (B, S, H, D)
  at::Tensor offsets;               // contiguous, or undefined
  DType dtype;
};

inline void check_x(const at::Tensor& x, const char* name) {
  TORCH_CHECK_VALUE(x.dim() == 4, "rope_windowed: ", name, " must be (B, S, H, D), got ", x.dim(),
                    " dims with sizes ", x.sizes());
  TORCH_CHECK_VALUE(is_supported_float(x.scalar_type()), "rope_windowed: ", name,
                    " must be float32, float16, bfloat16 or float64, got ", x.scalar_type(),
                    " with sizes ", x.sizes());
}

// `xs` holds one tensor (x) or two (q, k) that share B, S, D, dtype and device.
inline RopeCall make_rope_call(const std::vector<std::pair<at::Tensor, const char*>>& xs,
                               int64_t window_size, const std::optional<at::Tensor>& window_offsets,
                               double base, int64_t rotary_dim, bool interleaved, bool inverse) {
  const at::Tensor& x0 = xs[0].first;
  for (const auto& [x, name] : xs) check_x(x, name);
  const int64_t B = x0.size(0), S = x0.size(1), D = x0.size(3);
  for (size_t k = 1; k < xs.size(); ++k) {
    const at::Tensor& x = xs[k].first;
    TORCH_CHECK_VALUE(x.size(0) == B && x.size(1) == S && x.size(3) == D,
                      "rope_windowed_qk: ", xs[k].second, " must share B, S and D with ",
                      xs[0].second, ", got ", x.sizes(), " and ", x0.sizes());
    TORCH_CHECK_VALUE(x.scalar_type() == x0.scalar_type(), "rope_windowed_qk: ", xs[k].second,
                      " has dtype ", x.scalar_type(), " but ", xs[0].second, " has ",
                      x0.scalar_type());
    TORCH_CHECK_VALUE(x.device() == x0.device(), "rope_windowed_qk: ", xs[k].second, " is on ",
                      x.device(), " but ", xs[0].second, " is on ", x0.device());
  }
  TORCH_CHECK_VALUE(window_size > 0, "rope_windowed: window_size must be positive, got ",
                    window_size);
  TORCH_CHECK_VALUE(S % window_size == 0,
                    "rope_windowed: S must be a multiple of window_size, got S = ", S, " (",
                    xs[0].second, " sizes ", x0.sizes(), ") and window_size = ", window_size);
  TORCH_CHECK_VALUE(rotary_dim > 0 && rotary_dim % 2 == 0,
                    "rope_windowed: rotary_dim must be even and "
                    "positive, got rotary_dim = ",
                    rotary_dim, " (D = ", D, ")");
  TORCH_CHECK_VALUE(rotary_dim <= D,
                    "rope_windowed: rotary_dim must be <= D, got rotary_dim = ", rotary_dim,
                    " and D = ", D, " (", xs[0].second, " sizes ", x0.sizes(), ")");
  TORCH_CHECK_VALUE(base > 0.0, "rope_windowed: base must be positive, got ", base);
  const int64_t W = S / window_size;

  RopeCall call;
  call.dtype = to_af2_dtype(x0.scalar_type());
  if (window_offsets.has_value()) {
    const at::Tensor& off = *window_offsets;
    TORCH_CHECK_VALUE(off.scalar_type() == at::kInt || off.scalar_type() == at::kLong,
                      "rope_windowed: window_offsets must be int32 or int64, got ",
                      off.scalar_type(), " with sizes ", off.sizes());
    TORCH_CHECK_VALUE(off.dim() == 2 && off.size(0) == B && off.size(1) == W,
                      "rope_windowed: window_offsets must be (B, W) = (", B, ", ", W,
                      "), got sizes ", off.sizes());
    TORCH_CHECK_VALUE(off.device() == x0.device(), "rope_windowed: window_offsets is on ",
                      off.device(), " but ", xs[0].second, " is on ", x0.device());
    call.offsets = off.contiguous();
  }
  RopeParams& p = call.params;
  p.B = B;
  p.S = S;
  p.D = D;
  p.window_size = window_size;
  p.num_windows = W;
  p.window_offsets = call.offsets.defined() ? call.offsets.const_data_ptr() : nullptr;
  p.offsets_int64 = call.offsets.defined() && call.offsets.scalar_type() == at::kLong;
  p.base = base;
  p.rotary_dim = rotary_dim;
  p.interleaved = interleaved;
  p.sign = inverse ? -1.0f : 1.0f;
  for (const auto& [x, name] : xs) {
    call.inputs.push_back(x.stride(3) == 1 ? x : x.contiguous());
    call.outputs.push_back(empty_output(x.sizes(), x.options()));
  }
  return call;
}

inline std::vector<RopeTensor> rope_tensors(const RopeCall& call) {
  std::vector<RopeTensor> ts;
  for (size_t k = 0; k < call.inputs.size(); ++k) {
    const at::Tensor& in = call.inputs[k];
    const at::Tensor& out = call.outputs[k];
    ts.push_back(RopeTensor{in.const_data_ptr(), out.mutable_data_ptr(), in.size(2), in.stride(0),
                            in.stride(1), in.stride(2), out.stride(0), out.stride(1),
                            out.stride(2)});
  }
  return ts;
}

// Raises the ValueError of an out-of-range position; rc from rope_position_code (rope.h). On
// this error path the offending offset is read back (a device sync on CUDA is fine here).
inline void check_position_code(int rc, const RopeCall& call) {
  if (rc == 0) return;
  if (!call.offsets.defined()) {
    TORCH_CHECK_VALUE(false,
                      "rope_windowed: positions must stay below 2^24 (exact in float32); S = ",
                      call.params.S, " gives a larger one");
  }
  const auto [lo, hi] = at::aminmax(call.offsets);
  TORCH_CHECK_VALUE(rc != 1, "rope_windowed: window_offsets must be >= 0, got ", lo.item<int64_t>(),
                    " (window_offsets sizes ", call.offsets.sizes(), ")");
  TORCH_CHECK_VALUE(
      false,
      "rope_windowed: positions must stay below 2^24 (exact in float32); window_offsets "
      "holds ",
      hi.item<int64_t>(), " (sizes ", call.offsets.sizes(),
      "), which with window_size = ", call.params.window_size, " gives a larger one");
}

// The two op entry points, parameterised by the backend's runner (CPU or CUDA).
template <void (*Run)(const RopeCall&)>
at::Tensor rope_windowed_op(const at::Tensor& x, int64_t window_size,
                            const std::optional<at::Tensor>& offsets, double base,
                            int64_t rotary_dim, bool interleaved, bool inverse) {
  RopeCall call =
      make_rope_call({{x, "x"}}, window_size, offsets, base, rotary_dim, interleaved, inverse);
  Run(call);
  return call.outputs[0];
}

template <void (*Run)(const RopeCall&)>
std::tuple<at::Tensor, at::Tensor> rope_windowed_qk_op(const at::Tensor& q, const at::Tensor& k,
                                                       int64_t window_size,
                                                       const std::optional<at::Tensor>& offsets,
                                                       double base, int64_t rotary_dim,
                                                       bool interleaved, bool inverse) {
  RopeCall call = make_rope_call({{q, "q"}, {k, "k"}}, window_size, offsets, base, rotary_dim,
                                 interleaved, inverse);
  Run(call);
  return {call.outputs[0], call.outputs[1]};
}

}  // namespace af2::bind
