// CPU registration of media cross-attention: checks (media_attn_args.h), the range check
// (values are read on the CPU), allocation, kernel calls.
#include <torch/library.h>

#include "bindings/media_attn_args.h"

namespace af2::bind {
namespace {

void check_ranges(const MediaAttnCall& call) {
  const auto& p = call.params;
  for (int64_t i = 0; i < p.B * p.Lq; ++i) {
    const int64_t s = p.key_start[i], e = p.key_end[i];
    TORCH_CHECK_VALUE(s >= 0 && e <= p.Lk && s <= e,
                      "media_cross_attention: key ranges must satisfy "
                      "0 <= key_start <= key_end <= Lk = ",
                      p.Lk, ", got key_start[", i / p.Lq, ", ", i % p.Lq, "] = ", s,
                      " and key_end[", i / p.Lq, ", ", i % p.Lq, "] = ", e, " (key_start sizes ",
                      call.key_start.sizes(), ")");
  }
}

struct CpuBackend {
  static void forward(const MediaAttnCall& call, MediaAttnForward& f) {
    check_ranges(call);
    media_attn_forward_cpu(call.dtype, call.params, f);
  }
  static void backward(const MediaAttnCall& call, MediaAttnBackward& g, const at::Tensor&) {
    check_ranges(call);
    media_attn_backward_cpu(call.dtype, call.params, g);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CPU, m) {
  m.impl("media_cross_attention", &media_attn_forward_op<CpuBackend>);
  m.impl("media_cross_attention_backward", &media_attn_backward_op<CpuBackend>);
}

}  // namespace af2::bind
