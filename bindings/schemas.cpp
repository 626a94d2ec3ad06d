// The one place where af2's operator schemas are declared. Backends register their
// implementations with TORCH_LIBRARY_IMPL in the per-op binding files; the Python layer
// (af2/ops) adds fake (meta) kernels and autograd.
#include <torch/library.h>

TORCH_LIBRARY(af2, m) {
  // Windowed RoPE (docs/design.md). `inverse` rotates by the negative angle (the backward).
  m.def(
      "rope_windowed(Tensor x, int window_size, Tensor? window_offsets, float base, "
      "int rotary_dim, bool interleaved, bool inverse) -> Tensor");
  m.def(
      "rope_windowed_qk(Tensor q, Tensor k, int window_size, Tensor? window_offsets, "
      "float base, int rotary_dim, bool interleaved, bool inverse) -> (Tensor, Tensor)");

  // Media cross-attention (docs/design.md). Returns (out, lse); lse (B, H, Lq) float32 (float64 for
  // float64 inputs) feeds the backward, +inf for a query with no key.
  m.def(
      "media_cross_attention(Tensor q, Tensor k, Tensor v, Tensor key_start, Tensor key_end, "
      "Tensor? key_padding_mask, float scale) -> (Tensor, Tensor)");
  m.def(
      "media_cross_attention_backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, "
      "Tensor lse, Tensor key_start, Tensor key_end, Tensor? key_padding_mask, float scale) "
      "-> (Tensor, Tensor, Tensor)");

  // Tanh-gated residual x + tanh(gate) * y; the backward returns (grad_y, grad_gate).
  m.def("gated_residual(Tensor x, Tensor y, Tensor gate) -> Tensor");
  m.def("gated_residual_backward(Tensor grad, Tensor y, Tensor gate) -> (Tensor, Tensor)");

  // Contrastive loss with M positives and M x N hard negatives (docs/design.md) over keys audio_all
  // / text_all (the global batch; local row i is global row i + offset). Returns (terms (2, B, M),
  // row_lse (B), pair_lse (B, M), col_lse (B, M)), float32 (float64 for float64).
  m.def(
      "contrastive_loss(Tensor audio, Tensor text, Tensor audio_all, Tensor text_all, "
      "Tensor? hard_negatives, Tensor logit_scale, int offset) -> (Tensor, Tensor, Tensor, "
      "Tensor)");
  m.def(
      "contrastive_loss_backward(Tensor grad_terms, Tensor audio, Tensor text, Tensor audio_all, "
      "Tensor text_all, Tensor? hard_negatives, Tensor logit_scale, int offset, Tensor row_lse, "
      "Tensor pair_lse, Tensor col_lse) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}
