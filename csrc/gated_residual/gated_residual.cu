// Tanh-gated residual, CUDA kernels.
// What: out = x + tanh(g) y; backward grad_y = tanh(g) grad and (1 - tanh(g)^2) sum(grad * y).
// How:  grid-stride loops over 16-byte packs (8 bf16/fp16, 4 float, 2 double), a scalar tail;
//       the gate is read on the device (no host sync). The backward reduces each block's
//       partial sum with warp shuffles and adds it to one double with atomicAdd.
// Assumes: contiguous x, y, grad; 16-byte aligned pointers for the vector path (else scalar).
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_types.cuh"
#include "common/dtype_dispatch.h"
#include "gated_residual/gated_residual.h"

namespace af2 {
namespace {

__device__ __forceinline__ double read_gate(const void* gate, DType dt) {
  return dispatch_dtype(dt, 0.0, [&](auto t) {
    using T = typename DeviceType<decltype(t)>::type;
    return static_cast<double>(dev_to_acc(*static_cast<const T*>(gate)));
  });
}

template <typename T, int VEC>
__global__ void forward_kernel(const T* x, const T* y, const void* gate, DType gate_dtype, T* out,
                               int64_t n) {
  using A = typename DeviceAcc<T>::type;
  using P = Pack<T, VEC>;
  const A t = static_cast<A>(tanh(read_gate(gate, gate_dtype)));
  const int64_t packs = n / VEC, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < packs; i += stride) {
    const P xv = reinterpret_cast<const P*>(x)[i], yv = reinterpret_cast<const P*>(y)[i];
    P o;
#pragma unroll
    for (int u = 0; u < VEC; ++u)
      o.v[u] = dev_from_acc<T>(dev_to_acc(xv.v[u]) + t * dev_to_acc(yv.v[u]));
    reinterpret_cast<P*>(out)[i] = o;
  }
  for (int64_t i = packs * VEC + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = dev_from_acc<T>(dev_to_acc(x[i]) + t * dev_to_acc(y[i]));
}

template <typename T, int VEC>
__global__ void backward_kernel(const T* grad, const T* y, const void* gate, DType gate_dtype,
                                T* grad_y, double* grad_gate_acc, int64_t n) {
  using A = typename DeviceAcc<T>::type;
  using P = Pack<T, VEC>;
  const double td = tanh(static_cast<double>(read_gate(gate, gate_dtype)));
  const A t = static_cast<A>(td);
  const int64_t packs = n / VEC, stride = int64_t(gridDim.x) * blockDim.x;
  A part = A(0);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < packs; i += stride) {
    const P gv = reinterpret_cast<const P*>(grad)[i], yv = reinterpret_cast<const P*>(y)[i];
    P o;
#pragma unroll
    for (int u = 0; u < VEC; ++u) {
      const A g = dev_to_acc(gv.v[u]);
      o.v[u] = dev_from_acc<T>(t * g);
      part += g * dev_to_acc(yv.v[u]);
    }
    reinterpret_cast<P*>(grad_y)[i] = o;
  }
  for (int64_t i = packs * VEC + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const A g = dev_to_acc(grad[i]);
    grad_y[i] = dev_from_acc<T>(t * g);
    part += g * dev_to_acc(y[i]);
  }
  double sum = static_cast<double>(part);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  __shared__ double warp_sums[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) atomicAdd(grad_gate_acc, (1.0 - td * td) * sum);
  }
}

constexpr int kThreads = 256;

unsigned blocks_for(int64_t work) {
  const int64_t b = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 4096 ? 4096 : b));
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

template <typename HostT>
cudaError_t forward(const void* x, const void* y, const void* gate, DType gd, void* out, int64_t n,
                    cudaStream_t s) {
  using T = typename DeviceType<HostT>::type;
  constexpr int kVec = 16 / sizeof(T);
  const auto* xt = static_cast<const T*>(x);
  const auto* yt = static_cast<const T*>(y);
  auto* ot = static_cast<T*>(out);
  if (aligned16(x) && aligned16(y) && aligned16(out))
    forward_kernel<T, kVec><<<blocks_for(n / kVec), kThreads, 0, s>>>(xt, yt, gate, gd, ot, n);
  else
    forward_kernel<T, 1><<<blocks_for(n), kThreads, 0, s>>>(xt, yt, gate, gd, ot, n);
  return cudaGetLastError();
}

template <typename HostT>
cudaError_t backward(const void* grad, const void* y, const void* gate, DType gd, void* grad_y,
                     double* acc, int64_t n, cudaStream_t s) {
  using T = typename DeviceType<HostT>::type;
  constexpr int kVec = 16 / sizeof(T);
  const auto* gt = static_cast<const T*>(grad);
  const auto* yt = static_cast<const T*>(y);
  auto* ot = static_cast<T*>(grad_y);
  if (aligned16(grad) && aligned16(y) && aligned16(grad_y))
    backward_kernel<T, kVec>
        <<<blocks_for(n / kVec), kThreads, 0, s>>>(gt, yt, gate, gd, ot, acc, n);
  else
    backward_kernel<T, 1><<<blocks_for(n), kThreads, 0, s>>>(gt, yt, gate, gd, ot, acc, n);
  return cudaGetLastError();
}

}  // namespace

int gated_residual_forward_cuda(DType dtype, const void* x, const void* y, const void* gate,
                                DType gate_dtype, void* out, int64_t n, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue, [&](auto t) {
    return forward<decltype(t)>(x, y, gate, gate_dtype, out, n, s);
  }));
}

int gated_residual_backward_cuda(DType dtype, const void* grad, const void* y, const void* gate,
                                 DType gate_dtype, void* grad_y, double* grad_gate_acc, int64_t n,
                                 void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue, [&](auto t) {
    return backward<decltype(t)>(grad, y, gate, gate_dtype, grad_y, grad_gate_acc, n, s);
  }));
}

}  // namespace af2
