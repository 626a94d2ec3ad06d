// The CPU kernel entry points that csrc/cpu/dispatch.cpp dispatches to the chosen CPU variant.
// X(ns, ret, name, params, args): ns is passed through (the variant namespace where one is
// needed), params the parameter list, args the call's arguments.
#pragma once

#include "contrastive/contrastive.h"
#include "gated_residual/gated_residual.h"
#include "media_attn/media_attn.h"
#include "rope/rope.h"

#define AF2_CPU_ENTRY_POINTS(X, ns)                                                       \
  X(ns, int, rope_windowed_cpu,                                                           \
    (DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors),       \
    (dtype, p, tensors, num_tensors))                                                     \
  X(ns, int, media_attn_forward_cpu,                                                      \
    (DType dtype, const MediaAttnParams& p, const MediaAttnForward& f), (dtype, p, f))    \
  X(ns, int, media_attn_backward_cpu,                                                     \
    (DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g), (dtype, p, g))   \
  X(ns, void, gated_residual_forward_cpu,                                                 \
    (DType dtype, const void* x, const void* y, double gate, void* out, int64_t n),       \
    (dtype, x, y, gate, out, n))                                                          \
  X(ns, double, gated_residual_backward_cpu,                                              \
    (DType dtype, const void* grad, const void* y, double gate, void* grad_y, int64_t n), \
    (dtype, grad, y, gate, grad_y, n))                                                    \
  X(ns, void, contrastive_forward_cpu,                                                    \
    (DType dtype, const ContrastParams& p, const ContrastForward& f), (dtype, p, f))      \
  X(ns, void, contrastive_backward_cpu,                                                   \
    (DType dtype, const ContrastParams& p, const ContrastBackward& g), (dtype, p, g))

// The ops (names as in bindings/schemas.cpp) whose CPU kernels these entry points are.
#define AF2_CPU_OPS "rope_windowed", "media_cross_attention", "gated_residual", "contrastive_loss"
