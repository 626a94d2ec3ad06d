// CPU registration of the contrastive loss.
#include <torch/library.h>

#include "bindings/contrastive_args.h"

namespace af2::bind {
namespace {

struct CpuBackend {
  static void forward(ContrastCall& call, const ContrastForward& f) {
    call.params.scale = call.scale.item<double>();
    contrastive_forward_cpu(call.dtype, call.params, f);
  }
  static void backward(ContrastCall& call, const ContrastBackward& g) {
    call.params.scale = call.scale.item<double>();
    contrastive_backward_cpu(call.dtype, call.params, g);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(af2, CPU, m) {
  m.impl("contrastive_loss", &contrastive_forward_op<CpuBackend>);
  m.impl("contrastive_loss_backward", &contrastive_backward_op<CpuBackend>);
}

}  // namespace af2::bind
