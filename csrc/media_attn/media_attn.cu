// Media cross-attention, CUDA kernels and launchers.
//
// What: forward (out, lse) and backward (dq, dk, dv) of media_attn.h's contract.
// How:  forward: bf16/fp16 with head dim 64 or 128 and 16-byte aligned operands run the
//       tensor-core kernel of media_attn_tc.cuh. Everything else (float32, float64, other head
//       dims up to 256, unaligned views) runs the generic kernel below: one warp per query,
//       the head dim split across lanes (coalesced loads), a warp-shuffle dot product per key
//       and the online softmax in registers.
//       backward: bf16/fp16 with head dim 64 or 128 and 16-byte aligned operands run the
//       tensor-core kernels of media_attn_tc_bwd.cuh and media_attn_tc_bwd_dq.cuh (unless
//       MediaAttnBackwardPath::kSimt is asked for, or the device lacks their shared memory). The
//       generic backward (all dtypes): a query kernel (one warp per query) computes delta =
//       rowsum(dO * O), recomputes p = exp(s - lse) key by key and accumulates dq; then a key
//       kernel (one warp per key) walks the queries whose range holds that key and accumulates dk
//       and dv. Only the keys inside each query's range are visited; no Lq x Lk buffer exists.
// Assumes: unit stride along D; ranges are clamped to [0, Lk] and start >= end means no key.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/cuda_types.cuh"
#include "common/dtype_dispatch.h"
#include "common/warp_rows.cuh"
#include "media_attn/media_attn.h"
#include "media_attn/media_attn_tc.cuh"
#include "media_attn/media_attn_tc_bwd.cuh"
#include "media_attn/media_attn_tc_bwd_dq.cuh"

namespace af2 {
namespace {

constexpr int kWarpsPerBlock = 4;

struct Row {  // one (b, l, h) row of a BLHD tensor
  template <typename T>
  static __device__ const T* at(const BLHD& t, int64_t b, int64_t l, int64_t h) {
    return static_cast<const T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
  }
  template <typename T>
  static __device__ T* at(const BLHDOut& t, int64_t b, int64_t l, int64_t h) {
    return static_cast<T*>(t.data) + b * t.sb + l * t.sl + h * t.sh;
  }
};

__device__ __forceinline__ void clamp_range(const MediaAttnParams& p, int64_t b, int64_t i,
                                            int64_t& s, int64_t& e) {
  const int64_t ks = p.key_start[b * p.Lq + i], ke = p.key_end[b * p.Lq + i];
  s = ks > 0 ? ks : 0;
  e = ke < p.Lk ? ke : p.Lk;
}

// EPL: elements of the head dim per lane (D <= 32 * EPL); lane holds d = lane + 32 u.
template <typename T, typename A, int EPL>
__global__ void forward_generic(const MediaAttnParams p, const MediaAttnForward f) {
  const int lane = threadIdx.x % 32;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32, h = blockIdx.y,
                b = blockIdx.z;
  if (i >= p.Lq) return;
  int64_t s, e;
  clamp_range(p, b, i, s, e);
  A q[EPL], acc[EPL], kr[EPL], vr[EPL];
  lane_load<T, A, EPL>(Row::at<T>(p.q, b, i, h), p.D, lane, q, static_cast<A>(p.scale));
#pragma unroll
  for (int u = 0; u < EPL; ++u) acc[u] = A(0);
  A m = -INFINITY, l = A(0);
  for (int64_t j = s; j < e; ++j) {
    if (p.key_padding && !p.key_padding[b * p.Lk + j]) continue;
    lane_load<T, A, EPL>(Row::at<T>(p.k, b, j, h), p.D, lane, kr);
    lane_load<T, A, EPL>(Row::at<T>(p.v, b, j, h), p.D, lane, vr);
    A dot = A(0);
#pragma unroll
    for (int u = 0; u < EPL; ++u) dot += q[u] * kr[u];
    dot = warp_sum(dot);
    const A m_new = m > dot ? m : dot;
    const A alpha = acc_exp(m - m_new), pj = acc_exp(dot - m_new);
    l = l * alpha + pj;
#pragma unroll
    for (int u = 0; u < EPL; ++u) acc[u] = acc[u] * alpha + pj * vr[u];
    m = m_new;
  }
  using DT = T;
  DT* out = Row::at<DT>(f.out, b, i, h);
  const A inv = l > A(0) ? A(1) / l : A(0);
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < p.D) out[d] = dev_from_acc<DT>(acc[u] * inv);
  }
  // l is NaN when a score was NaN: lse is then NaN too, so the backward's p is NaN.
  if (lane == 0)
    static_cast<A*>(f.lse)[(b * p.H + h) * p.Lq + i] = l != A(0) ? m + acc_log(l) : A(INFINITY);
}

// dq and delta = rowsum(dO * O); one warp per query.
template <typename T, typename A, int EPL>
__global__ void backward_query(const MediaAttnParams p, const MediaAttnBackward g, A* delta) {
  const int lane = threadIdx.x % 32;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32, h = blockIdx.y,
                b = blockIdx.z;
  if (i >= p.Lq) return;
  int64_t s, e;
  clamp_range(p, b, i, s, e);
  const A scale = static_cast<A>(p.scale);
  A q[EPL], go[EPL], o[EPL], kr[EPL], vr[EPL], dq[EPL];
  lane_load<T, A, EPL>(Row::at<T>(p.q, b, i, h), p.D, lane, q);
  lane_load<T, A, EPL>(Row::at<T>(g.grad_out, b, i, h), p.D, lane, go);
  lane_load<T, A, EPL>(Row::at<T>(g.out, b, i, h), p.D, lane, o);
  A di = A(0);
#pragma unroll
  for (int u = 0; u < EPL; ++u) di += go[u] * o[u], dq[u] = A(0);
  di = warp_sum(di);
  const int64_t row = (b * p.H + h) * p.Lq + i;
  if (lane == 0) delta[row] = di;
  const A lse = static_cast<const A*>(g.lse)[row];
  for (int64_t j = s; j < e; ++j) {
    if (p.key_padding && !p.key_padding[b * p.Lk + j]) continue;
    lane_load<T, A, EPL>(Row::at<T>(p.k, b, j, h), p.D, lane, kr);
    lane_load<T, A, EPL>(Row::at<T>(p.v, b, j, h), p.D, lane, vr);
    A dot = A(0), dp = A(0);
#pragma unroll
    for (int u = 0; u < EPL; ++u) dot += q[u] * kr[u], dp += go[u] * vr[u];
    dot = warp_sum(dot);
    dp = warp_sum(dp);
    const A pj = acc_exp(dot * scale - lse), ds = pj * (dp - di) * scale;
#pragma unroll
    for (int u = 0; u < EPL; ++u) dq[u] += ds * kr[u];
  }
  T* out = Row::at<T>(g.dq, b, i, h);
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < p.D) out[d] = dev_from_acc<T>(dq[u]);
  }
}

// dk and dv; one warp per key, over the queries whose range holds it.
template <typename T, typename A, int EPL>
__global__ void backward_key(const MediaAttnParams p, const MediaAttnBackward g, const A* delta) {
  const int lane = threadIdx.x % 32;
  const int64_t j = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32, h = blockIdx.y,
                b = blockIdx.z;
  if (j >= p.Lk) return;
  const A scale = static_cast<A>(p.scale);
  A kr[EPL], vr[EPL], q[EPL], go[EPL], dk[EPL], dv[EPL];
#pragma unroll
  for (int u = 0; u < EPL; ++u) dk[u] = dv[u] = A(0);
  if (p.key_padding == nullptr || p.key_padding[b * p.Lk + j]) {
    lane_load<T, A, EPL>(Row::at<T>(p.k, b, j, h), p.D, lane, kr);
    lane_load<T, A, EPL>(Row::at<T>(p.v, b, j, h), p.D, lane, vr);
    for (int64_t i = 0; i < p.Lq; ++i) {
      int64_t s, e;
      clamp_range(p, b, i, s, e);
      if (j < s || j >= e) continue;
      lane_load<T, A, EPL>(Row::at<T>(p.q, b, i, h), p.D, lane, q);
      lane_load<T, A, EPL>(Row::at<T>(g.grad_out, b, i, h), p.D, lane, go);
      A dot = A(0), dp = A(0);
#pragma unroll
      for (int u = 0; u < EPL; ++u) dot += q[u] * kr[u], dp += go[u] * vr[u];
      dot = warp_sum(dot);
      dp = warp_sum(dp);
      const int64_t row = (b * p.H + h) * p.Lq + i;
      const A pj = acc_exp(dot * scale - static_cast<const A*>(g.lse)[row]);
      const A ds = pj * (dp - delta[row]) * scale;
#pragma unroll
      for (int u = 0; u < EPL; ++u) dv[u] += pj * go[u], dk[u] += ds * q[u];
    }
  }
  T* dko = Row::at<T>(g.dk, b, j, h);
  T* dvo = Row::at<T>(g.dv, b, j, h);
#pragma unroll
  for (int u = 0; u < EPL; ++u) {
    const int64_t d = lane + 32 * u;
    if (d < p.D) dko[d] = dev_from_acc<T>(dk[u]), dvo[d] = dev_from_acc<T>(dv[u]);
  }
}

dim3 warp_grid(int64_t rows, const MediaAttnParams& p) {
  return dim3(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock),
              static_cast<unsigned>(p.H), static_cast<unsigned>(p.B));
}

bool aligned16(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}
bool tc_layout_ok(const BLHD& t) {
  return aligned16(t.data) && t.sb % 8 == 0 && t.sl % 8 == 0 && t.sh % 8 == 0;
}

template <typename T, int D>
cudaError_t launch_tc(const MediaAttnParams& p, const MediaAttnForward& f, cudaStream_t stream) {
  namespace tc = media_attn_tc;
  tc::FwdArgs a{p.q.data,
                p.k.data,
                p.v.data,
                p.q.sb,
                p.q.sl,
                p.q.sh,
                p.k.sb,
                p.k.sl,
                p.k.sh,
                p.v.sb,
                p.v.sl,
                p.v.sh,
                f.out.data,
                f.out.sb,
                f.out.sl,
                f.out.sh,
                static_cast<float*>(f.lse),
                p.key_start,
                p.key_end,
                p.key_padding,
                static_cast<int>(p.Lq),
                static_cast<int>(p.Lk),
                static_cast<int>(p.H),
                static_cast<float>(p.scale)};
  constexpr int smem = tc::smem_bytes<D>();
  auto kernel = tc::forward_kernel<T, D>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>((p.Lq + tc::kBM - 1) / tc::kBM), static_cast<unsigned>(p.H),
                  static_cast<unsigned>(p.B));
  kernel<<<grid, tc::kThreads, smem, stream>>>(a);
  return cudaGetLastError();
}

template <typename T, typename A, int EPL>
cudaError_t launch_generic_forward(const MediaAttnParams& p, const MediaAttnForward& f,
                                   cudaStream_t stream) {
  forward_generic<T, A, EPL><<<warp_grid(p.Lq, p), 32 * kWarpsPerBlock, 0, stream>>>(p, f);
  return cudaGetLastError();
}

template <typename T, typename A, int EPL>
cudaError_t launch_generic_backward(const MediaAttnParams& p, const MediaAttnBackward& g,
                                    void* delta, cudaStream_t stream) {
  backward_query<T, A, EPL>
      <<<warp_grid(p.Lq, p), 32 * kWarpsPerBlock, 0, stream>>>(p, g, static_cast<A*>(delta));
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  backward_key<T, A, EPL>
      <<<warp_grid(p.Lk, p), 32 * kWarpsPerBlock, 0, stream>>>(p, g, static_cast<const A*>(delta));
  return cudaGetLastError();
}

// The generic kernels hold EPL = 2, 4 or 8 elements of the head dim per lane (D <= 64, 128, 256).
template <typename HostT>
cudaError_t forward(const MediaAttnParams& p, const MediaAttnForward& f, cudaStream_t stream) {
  using T = typename DeviceType<HostT>::type;
  if constexpr (sizeof(T) == 2) {
    const bool tc_ok = tc_layout_ok(p.q) && tc_layout_ok(p.k) && tc_layout_ok(p.v) &&
                       aligned16(f.out.data) && p.Lq < (int64_t{1} << 31) &&
                       p.Lk < (int64_t{1} << 31);
    if (tc_ok && p.D == 64) return launch_tc<T, 64>(p, f, stream);
    if (tc_ok && p.D == 128) return launch_tc<T, 128>(p, f, stream);
  }
  return by_dim<HostT, 2, 4, 8>(p.D, [&](auto t, auto a, auto epl) {
    return launch_generic_forward<decltype(t), decltype(a), decltype(epl)::value>(p, f, stream);
  });
}

// Workspace: Delta (B, H, Lq) in the accumulation type, then (256-byte aligned) the key hull
// of every query tile of the tensor-core backward, (B, ceil(Lq / 32)) int2 at most.
constexpr size_t kWorkspaceAlign = 256;
size_t delta_bytes(DType dtype, const MediaAttnParams& p) {
  const size_t n = static_cast<size_t>(p.B * p.H * p.Lq) * (dtype == DType::kFloat64 ? 8 : 4);
  return (n + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

template <typename T, int D>
cudaError_t launch_tc_backward(const MediaAttnParams& p, const MediaAttnBackward& g,
                               void* workspace, size_t hull_offset, cudaStream_t stream) {
  namespace tc = media_attn_tc;
  constexpr int BMq = tc::BwdCfg<D>::kBMq;
  tc::BwdArgs a{p.q,
                p.k,
                p.v,
                g.grad_out,
                g.out,
                g.dq,
                g.dk,
                g.dv,
                static_cast<const float*>(g.lse),
                static_cast<float*>(workspace),
                reinterpret_cast<int2*>(static_cast<unsigned char*>(workspace) + hull_offset),
                p.key_start,
                p.key_end,
                p.key_padding,
                static_cast<int>(p.Lq),
                static_cast<int>(p.Lk),
                static_cast<int>(p.H),
                static_cast<int>((p.Lq + BMq - 1) / BMq),
                static_cast<float>(p.scale)};
  const unsigned H = static_cast<unsigned>(p.H), B = static_cast<unsigned>(p.B);
  tc::preprocess_kernel<T, D><<<dim3(static_cast<unsigned>(a.nqt), H, B), BMq * 4, 0, stream>>>(a);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  constexpr int dq_smem = tc::dq_smem_bytes<D>(), dkdv_smem = tc::dkdv_smem_bytes<D>();
  auto dq = tc::dq_kernel<T, D>;
  auto dkdv = tc::dkdv_kernel<T, D>;
  if ((err = cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, dq_smem)) !=
      cudaSuccess)
    return err;
  if ((err = cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, dkdv_smem)) !=
      cudaSuccess)
    return err;
  dkdv<<<dim3(static_cast<unsigned>((p.Lk + tc::kBN - 1) / tc::kBN), H, B), tc::kThreads, dkdv_smem,
         stream>>>(a);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  dq<<<dim3(static_cast<unsigned>((p.Lq + tc::kBM - 1) / tc::kBM), H, B), tc::kThreads, dq_smem,
       stream>>>(a);
  return cudaGetLastError();
}

// Whether the current device grants a block `bytes` of dynamic shared memory (the Dh 128
// dQ kernel wants 105 KB: more than sm_86 / sm_89 allow; those run the generic backward).
bool smem_fits(int bytes) {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();  // clear it: the generic kernels will report a real failure
    return false;
  }
  return bytes <= optin;
}
template <int D>
bool tc_backward_fits() {
  return smem_fits(
      std::max(media_attn_tc::dq_smem_bytes<D>(), media_attn_tc::dkdv_smem_bytes<D>()));
}

template <typename HostT>
cudaError_t backward(const MediaAttnParams& p, const MediaAttnBackward& g,
                     MediaAttnBackwardPath path, void* workspace, size_t hull_offset,
                     cudaStream_t stream) {
  using T = typename DeviceType<HostT>::type;
  if constexpr (sizeof(T) == 2) {
    const bool tc_ok = path == MediaAttnBackwardPath::kTensorCore && tc_layout_ok(p.q) &&
                       tc_layout_ok(p.k) && tc_layout_ok(p.v) && tc_layout_ok(g.grad_out) &&
                       tc_layout_ok(g.out) &&
                       tc_layout_ok(BLHD{g.dq.data, g.dq.sb, g.dq.sl, g.dq.sh}) &&
                       tc_layout_ok(BLHD{g.dk.data, g.dk.sb, g.dk.sl, g.dk.sh}) &&
                       tc_layout_ok(BLHD{g.dv.data, g.dv.sb, g.dv.sl, g.dv.sh}) &&
                       p.Lq < (int64_t{1} << 31) && p.Lk < (int64_t{1} << 31);
    if (tc_ok && p.D == 64 && tc_backward_fits<64>())
      return launch_tc_backward<T, 64>(p, g, workspace, hull_offset, stream);
    if (tc_ok && p.D == 128 && tc_backward_fits<128>())
      return launch_tc_backward<T, 128>(p, g, workspace, hull_offset, stream);
  }
  return by_dim<HostT, 2, 4, 8>(p.D, [&](auto t, auto a, auto epl) {
    return launch_generic_backward<decltype(t), decltype(a), decltype(epl)::value>(p, g, workspace,
                                                                                   stream);
  });
}

}  // namespace

int media_attn_forward_cuda(DType dtype, const MediaAttnParams& p, const MediaAttnForward& f,
                            void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue,
                                         [&](auto t) { return forward<decltype(t)>(p, f, st); }));
}

size_t media_attn_backward_cuda_workspace_bytes(DType dtype, const MediaAttnParams& p) {
  return delta_bytes(dtype, p) + static_cast<size_t>(p.B * ((p.Lq + 31) / 32)) * sizeof(int2);
}

int media_attn_backward_cuda(DType dtype, const MediaAttnParams& p, const MediaAttnBackward& g,
                             MediaAttnBackwardPath path, void* workspace, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  const size_t off = delta_bytes(dtype, p);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue, [&](auto t) {
    return backward<decltype(t)>(p, g, path, workspace, off, st);
  }));
}

}  // namespace af2
