// Checks, parameter packing and op entry points of the contrastive loss, shared by the CPU and
// CUDA registrations (each supplies its Backend). Every error names the argument and its sizes.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <optional>
#include <tuple>

#include "bindings/dtype.h"
#include "contrastive/contrastive.h"

namespace af2::bind {

struct ContrastCall {
  ContrastParams params;
  at::Tensor audio, text, audio_all, text_all, neg, scale;  // contiguous, kept alive
  DType dtype;
  at::ScalarType acc;  // compute dtype of terms and statistics
};

inline ContrastCall make_contrast_call(const at::Tensor& audio, const at::Tensor& text,
                                       const at::Tensor& audio_all, const at::Tensor& text_all,
                                       const std::optional<at::Tensor>& hard_negatives,
                                       const at::Tensor& logit_scale, int64_t offset) {
  const char* op = "contrastive_loss: ";
  TORCH_CHECK_VALUE(audio.dim() == 2, op, "audio must be (B, D), got sizes ", audio.sizes());
  TORCH_CHECK_VALUE(is_supported_float(audio.scalar_type()), op,
                    "audio must be float32, float16, bfloat16 or float64, got ",
                    audio.scalar_type());
  const int64_t B = audio.size(0), D = audio.size(1);
  TORCH_CHECK_VALUE(text.dim() == 3 && text.size(0) == B && text.size(2) == D, op,
                    "text must be (B, M, D) with audio's B = ", B, " and D = ", D, ", got sizes ",
                    text.sizes());
  const int64_t M = text.size(1);
  TORCH_CHECK_VALUE(M >= 1, op,
                    "text must hold at least one caption per audio (M >= 1), got sizes ",
                    text.sizes());
  TORCH_CHECK_VALUE(audio_all.dim() == 2 && audio_all.size(1) == D, op,
                    "audio_all must be (G, D) with D = ", D, ", got sizes ", audio_all.sizes());
  const int64_t G = audio_all.size(0);
  TORCH_CHECK_VALUE(text_all.dim() == 3 && text_all.size(0) == G && text_all.size(1) == M &&
                        text_all.size(2) == D,
                    op, "text_all must be (G, M, D) = (", G, ", ", M, ", ", D, "), got sizes ",
                    text_all.sizes());
  TORCH_CHECK_VALUE(offset >= 0 && offset + B <= G, op, "offset + B must be <= G, got offset ",
                    offset, ", B ", B, ", G ", G);
  for (auto [t, name] :
       {std::pair{&text, "text"}, {&audio_all, "audio_all"}, {&text_all, "text_all"}}) {
    TORCH_CHECK_VALUE(t->scalar_type() == audio.scalar_type(), op, name, " has dtype ",
                      t->scalar_type(), " but audio has ", audio.scalar_type());
    TORCH_CHECK_VALUE(t->device() == audio.device(), op, name, " is on ", t->device(),
                      " but audio is on ", audio.device());
  }
  ContrastCall call;
  int64_t N = 0;
  if (hard_negatives.has_value()) {
    const at::Tensor& h = *hard_negatives;
    TORCH_CHECK_VALUE(h.dim() == 4 && h.size(0) == B && h.size(1) == M && h.size(3) == D, op,
                      "hard_negatives must be (B, M, N, D) = (", B, ", ", M, ", N, ", D,
                      "), got sizes ", h.sizes());
    TORCH_CHECK_VALUE(h.scalar_type() == audio.scalar_type(), op, "hard_negatives has dtype ",
                      h.scalar_type(), " but audio has ", audio.scalar_type());
    TORCH_CHECK_VALUE(h.device() == audio.device(), op, "hard_negatives is on ", h.device(),
                      " but audio is on ", audio.device());
    N = h.size(2);
    call.neg = h.contiguous();
  }
  TORCH_CHECK_VALUE(logit_scale.numel() == 1, op, "logit_scale must be a scalar, got sizes ",
                    logit_scale.sizes());
  TORCH_CHECK_VALUE(is_supported_float(logit_scale.scalar_type()), op,
                    "logit_scale must be a float tensor, got ", logit_scale.scalar_type());
  TORCH_CHECK_VALUE(logit_scale.device() == audio.device() || logit_scale.device().is_cpu(), op,
                    "logit_scale is on ", logit_scale.device(), " but audio is on ",
                    audio.device());
  call.audio = audio.contiguous();
  call.text = text.contiguous();
  call.audio_all = audio_all.contiguous();
  call.text_all = text_all.contiguous();
  call.scale = logit_scale;
  call.dtype = to_af2_dtype(audio.scalar_type());
  call.acc = compute_dtype(audio.scalar_type());
  ContrastParams& p = call.params;
  p.B = B;
  p.G = G;
  p.M = M;
  p.N = N;
  p.D = D;
  p.offset = offset;
  p.audio = call.audio.const_data_ptr();
  p.text = call.text.const_data_ptr();
  p.audio_all = call.audio_all.const_data_ptr();
  p.text_all = call.text_all.const_data_ptr();
  p.neg = N > 0 ? call.neg.const_data_ptr() : nullptr;
  return call;
}

// Backend: static forward(call, ContrastForward&) and backward(call, ContrastBackward&, d_scale
// tensor).
template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_forward_op(
    const at::Tensor& audio, const at::Tensor& text, const at::Tensor& audio_all,
    const at::Tensor& text_all, const std::optional<at::Tensor>& hard_negatives,
    const at::Tensor& logit_scale, int64_t offset) {
  ContrastCall call =
      make_contrast_call(audio, text, audio_all, text_all, hard_negatives, logit_scale, offset);
  const auto& p = call.params;
  const auto opts = audio.options().dtype(call.acc);
  at::Tensor terms = at::empty({2, p.B, p.M}, opts), row_lse = at::empty({p.B}, opts);
  at::Tensor pair_lse = at::empty({p.B, p.M}, opts), col_lse = at::empty({p.B, p.M}, opts);
  ContrastForward f{terms.mutable_data_ptr(), row_lse.mutable_data_ptr(),
                    pair_lse.mutable_data_ptr(), col_lse.mutable_data_ptr()};
  if (p.B > 0) Backend::forward(call, f);
  return {terms, row_lse, pair_lse, col_lse};
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
contrastive_backward_op(const at::Tensor& grad_terms, const at::Tensor& audio,
                        const at::Tensor& text, const at::Tensor& audio_all,
                        const at::Tensor& text_all, const std::optional<at::Tensor>& hard_negatives,
                        const at::Tensor& logit_scale, int64_t offset, const at::Tensor& row_lse,
                        const at::Tensor& pair_lse, const at::Tensor& col_lse) {
  ContrastCall call =
      make_contrast_call(audio, text, audio_all, text_all, hard_negatives, logit_scale, offset);
  const auto& p = call.params;
  TORCH_CHECK_VALUE(grad_terms.dim() == 3 && grad_terms.size(0) == 2 && grad_terms.size(1) == p.B &&
                        grad_terms.size(2) == p.M,
                    "contrastive_loss_backward: grad_terms must be (2, B, M) = (2, ", p.B, ", ",
                    p.M, "), got sizes ", grad_terms.sizes());
  for (auto [t, name] : {std::pair{&grad_terms, "grad_terms"},
                         {&row_lse, "row_lse"},
                         {&pair_lse, "pair_lse"},
                         {&col_lse, "col_lse"}}) {
    TORCH_CHECK_VALUE(t->device() == audio.device(), "contrastive_loss_backward: ", name, " is on ",
                      t->device(), " but audio is on ", audio.device());
  }
  const at::Tensor gt = grad_terms.to(call.acc).contiguous();
  const at::Tensor rl = row_lse.to(call.acc).contiguous(), pl = pair_lse.to(call.acc).contiguous(),
                   cl = col_lse.to(call.acc).contiguous();
  at::Tensor d_audio = at::empty_like(call.audio), d_text = at::empty_like(call.text);
  at::Tensor d_audio_all = at::empty_like(call.audio_all),
             d_text_all = at::empty_like(call.text_all);
  at::Tensor d_neg = p.N > 0 ? at::empty_like(call.neg) : at::empty({0}, audio.options());
  at::Tensor d_scale = at::zeros({}, audio.options().dtype(at::kDouble));
  ContrastBackward g{gt.const_data_ptr(),
                     rl.const_data_ptr(),
                     pl.const_data_ptr(),
                     cl.const_data_ptr(),
                     d_audio.mutable_data_ptr(),
                     d_text.mutable_data_ptr(),
                     d_audio_all.mutable_data_ptr(),
                     d_text_all.mutable_data_ptr(),
                     p.N > 0 ? d_neg.mutable_data_ptr() : nullptr,
                     d_scale.mutable_data_ptr<double>()};
  if (p.B > 0) {
    Backend::backward(call, g);
  } else {
    d_audio_all.zero_();
    d_text_all.zero_();
  }
  return {d_audio,    d_text, d_audio_all,
          d_text_all, d_neg,  d_scale.to(logit_scale.scalar_type()).reshape(logit_scale.sizes())};
}

}  // namespace af2::bind
