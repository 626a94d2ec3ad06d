// Argument checking, parameter packing and the op entry points of media cross-attention,
// shared by the CPU and CUDA registrations (each supplies its Backend). Every error names the
// argument and the sizes it got.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <optional>
#include <tuple>

#include "bindings/dtype.h"
#include "bindings/output_alloc.h"
#include "media_attn/media_attn.h"

namespace af2::bind {

inline at::Tensor unit_stride_d(const at::Tensor& t) {
  return t.stride(3) == 1 ? t : t.contiguous();
}
inline BLHD blhd(const at::Tensor& t) {
  return BLHD{t.const_data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}
inline BLHDOut blhd_out(at::Tensor& t) {
  return BLHDOut{t.mutable_data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

struct MediaAttnCall {
  MediaAttnParams params;
  at::Tensor q, k, v, key_start, key_end, key_padding;  // kept alive for the kernel
  DType dtype;
};

inline MediaAttnCall make_media_attn_call(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const at::Tensor& key_start,
                                          const at::Tensor& key_end,
                                          const std::optional<at::Tensor>& key_padding_mask,
                                          double scale) {
  const char* op = "media_cross_attention: ";
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    TORCH_CHECK_VALUE(t->dim() == 4, op, name, " must be (B, L, H, Dh), got ", t->dim(),
                      " dims with sizes ", t->sizes());
    TORCH_CHECK_VALUE(is_supported_float(t->scalar_type()), op, name,
                      " must be float32, float16, bfloat16 or float64, got ", t->scalar_type(),
                      " with sizes ", t->sizes());
    TORCH_CHECK_VALUE(t->scalar_type() == q.scalar_type(), op, name, " has dtype ",
                      t->scalar_type(), " but q has ", q.scalar_type());
    TORCH_CHECK_VALUE(t->device() == q.device(), op, name, " is on ", t->device(), " but q is on ",
                      q.device());
  }
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1);
  TORCH_CHECK_VALUE(k.sizes() == v.sizes(), op, "k and v must have the same sizes, got k ",
                    k.sizes(), " and v ", v.sizes());
  TORCH_CHECK_VALUE(k.size(0) == B && k.size(2) == H && k.size(3) == D, op,
                    "k and v must be (B, Lk, H, Dh) with q's B, H and Dh, got q ", q.sizes(),
                    " and k ", k.sizes());
  for (auto [t, name] : {std::pair{&key_start, "key_start"}, {&key_end, "key_end"}}) {
    TORCH_CHECK_VALUE(t->scalar_type() == at::kInt, op, name, " must be int32, got ",
                      t->scalar_type(), " with sizes ", t->sizes());
    TORCH_CHECK_VALUE(t->dim() == 2 && t->size(0) == B && t->size(1) == Lq, op, name,
                      " must be (B, Lq) = (", B, ", ", Lq, "), got sizes ", t->sizes());
    TORCH_CHECK_VALUE(t->device() == q.device(), op, name, " is on ", t->device(), " but q is on ",
                      q.device());
  }
  MediaAttnCall call;
  if (key_padding_mask.has_value()) {
    const at::Tensor& m = *key_padding_mask;
    TORCH_CHECK_VALUE(m.scalar_type() == at::kBool, op, "key_padding_mask must be bool, got ",
                      m.scalar_type(), " with sizes ", m.sizes());
    TORCH_CHECK_VALUE(m.dim() == 2 && m.size(0) == B && m.size(1) == Lk, op,
                      "key_padding_mask must be (B, Lk) = (", B, ", ", Lk, "), got sizes ",
                      m.sizes());
    TORCH_CHECK_VALUE(m.device() == q.device(), op, "key_padding_mask is on ", m.device(),
                      " but q is on ", q.device());
    call.key_padding = m.contiguous();
  }
  TORCH_CHECK_VALUE(std::isfinite(scale), op, "scale must be finite, got ", scale);
  call.q = unit_stride_d(q);
  call.k = unit_stride_d(k);
  call.v = unit_stride_d(v);
  call.key_start = key_start.contiguous();
  call.key_end = key_end.contiguous();
  call.dtype = to_af2_dtype(q.scalar_type());
  MediaAttnParams& p = call.params;
  p.B = B;
  p.Lq = Lq;
  p.Lk = Lk;
  p.H = H;
  p.D = D;
  p.q = blhd(call.q);
  p.k = blhd(call.k);
  p.v = blhd(call.v);
  p.key_start = call.key_start.const_data_ptr<int32_t>();
  p.key_end = call.key_end.const_data_ptr<int32_t>();
  p.key_padding = call.key_padding.defined()
                      ? reinterpret_cast<const uint8_t*>(call.key_padding.const_data_ptr())
                      : nullptr;
  p.scale = scale;
  return call;
}

// Backend: struct with static forward(const MediaAttnCall&, MediaAttnForward&) and
// backward(const MediaAttnCall&, MediaAttnBackward&, const at::Tensor& like).
template <typename Backend>
std::tuple<at::Tensor, at::Tensor> media_attn_forward_op(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_start,
    const at::Tensor& key_end, const std::optional<at::Tensor>& key_padding_mask, double scale) {
  MediaAttnCall call = make_media_attn_call(q, k, v, key_start, key_end, key_padding_mask, scale);
  const auto& p = call.params;
  at::Tensor out = empty_output(q.sizes(), q.options());
  // the log-sum-exp is kept in the compute type (float64 for float64 inputs, else float32)
  at::Tensor lse = at::empty({p.B, p.H, p.Lq}, q.options().dtype(compute_dtype(q.scalar_type())));
  MediaAttnForward f{blhd_out(out), lse.mutable_data_ptr()};
  if (out.numel() > 0) Backend::forward(call, f);
  return {out, lse};
}

template <typename Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> media_attn_backward_op(
    const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& key_start,
    const at::Tensor& key_end, const std::optional<at::Tensor>& key_padding_mask, double scale) {
  MediaAttnCall call = make_media_attn_call(q, k, v, key_start, key_end, key_padding_mask, scale);
  const auto& p = call.params;
  const char* op = "media_cross_attention_backward: ";
  for (auto [t, name] : {std::pair{&grad_out, "grad_out"}, {&out, "out"}}) {
    TORCH_CHECK_VALUE(
        t->sizes() == q.sizes() && t->scalar_type() == q.scalar_type() && t->device() == q.device(),
        op, name, " must match q (sizes ", q.sizes(), ", ", q.scalar_type(), "), got sizes ",
        t->sizes(), ", ", t->scalar_type(), " on ", t->device());
  }
  TORCH_CHECK_VALUE(lse.scalar_type() == compute_dtype(q.scalar_type()) && lse.dim() == 3 &&
                        lse.size(0) == p.B && lse.size(1) == p.H && lse.size(2) == p.Lq,
                    op, "lse must be ", compute_dtype(q.scalar_type()), " (B, H, Lq) = (", p.B,
                    ", ", p.H, ", ", p.Lq, "), got ", lse.scalar_type(), " ", lse.sizes());
  TORCH_CHECK_VALUE(lse.device() == q.device(), op, "lse is on ", lse.device(), " but q is on ",
                    q.device());
  const at::Tensor go = unit_stride_d(grad_out), o = unit_stride_d(out), l = lse.contiguous();
  at::Tensor dq = empty_output(q.sizes(), q.options());
  at::Tensor dk = empty_output(k.sizes(), k.options());
  at::Tensor dv = empty_output(v.sizes(), v.options());
  if (p.Lq == 0 || p.Lk == 0) {  // no query or no key: every gradient is 0 (and no kernel has work)
    dq.zero_();
    dk.zero_();
    dv.zero_();
    return {dq, dk, dv};
  }
  MediaAttnBackward g{blhd(go),     blhd(o),      l.const_data_ptr(),
                      blhd_out(dq), blhd_out(dk), blhd_out(dv)};
  if (dk.numel() > 0 || dq.numel() > 0) Backend::backward(call, g, q);
  return {dq, dk, dv};
}

}  // namespace af2::bind
