// CPU registration of the windowed RoPE ops: checks (rope_args.h), allocation, kernel call.
#include <torch/library.h>

#include "bindings/rope_args.h"

namespace af2::bind {
namespace {

void run_cpu(const RopeCall& call) {
  const auto ts = rope_tensors(call);
  const int rc = rope_windowed_cpu(call.dtype, call.params, ts.data(), static_cast<int>(ts.size()));
  check_position_code(rc, call);
}

}  // namespace

TORCH_LIBRARY_IMPL(af2, CPU, m) {
  m.impl("rope_windowed", &rope_windowed_op<run_cpu>);
  m.impl("rope_windowed_qk", &rope_windowed_qk_op<run_cpu>);
}

}  // namespace af2::bind
