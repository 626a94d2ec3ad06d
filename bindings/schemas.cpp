// The one place where af2's operator schemas are declared. Backends register their
// implementations with TORCH_LIBRARY_IMPL in the per-op binding files; the Python layer
// (af2/ops) adds fake (meta) kernels and autograd.
#include <torch/library.h>

TORCH_LIBRARY(af2, m) {
  // Windowed RoPE (DESIGN.md). `inverse` rotates by the negative angle (the backward).
  m.def("rope_windowed(Tensor x, int window_size, Tensor? window_offsets, float base, "
        "int rotary_dim, bool interleaved, bool inverse) -> Tensor");
  m.def("rope_windowed_qk(Tensor q, Tensor k, int window_size, Tensor? window_offsets, "
        "float base, int rotary_dim, bool interleaved, bool inverse) -> (Tensor, Tensor)");
}
