// Windowed RoPE, CUDA kernel.
//
// What: out = rotate(x, sign * p * theta) per docs/design.md (rope.h has the exact contract); one
//       launch rotates one tensor, or q and k together (they share positions and the table).
// How:  one thread block per token (b, s). The block first computes the cos/sin of the
//       token's rd/2 angles into shared memory (theta in double, rounded to float, the angle
//       formed in float32, then sincosf), so each (position, frequency) is evaluated once and
//       reused by every head. Then its threads stride over work items: a work item is one
//       VEC-wide chunk of one head, either a rotation item (non-interleaved: the chunk at i and
//       its partner at i + rd/2; interleaved: VEC/2 adjacent pairs) or a pass-through chunk
//       (channels >= rd). Each element is read once and written once, with 16-byte loads and
//       stores on the vector path. The backward is this kernel with sign = -1.
// Assumes: unit stride along D. The vector path (VEC = 16 / sizeof(T)) needs 16-byte aligned
//       base pointers, D, rd/2 (or rd when interleaved), D - rd and the token/head strides all
//       multiples of VEC; the launcher falls back to VEC = 1 otherwise. Positions are not
//       range-checked here: the torch glue (bindings/rope_cuda.cpp) checks them before the
//       launch; they are used as given (they only form angles, never addresses).
#include <cstdint>

#include "common/cuda_types.cuh"
#include "common/dtype_dispatch.h"
#include "rope/rope.h"

namespace af2 {
namespace {

struct DevTensor {
  const void* in;
  void* out;
  int64_t H, in_sb, in_ss, in_sh, out_sb, out_ss, out_sh;
};

struct KernelArgs {
  DevTensor t[2];
  int num_tensors;
  int64_t S, D, window_size, num_windows, rotary_dim;
  const void* offsets;
  bool offsets_int64;
  double base;
  float sign;
};

template <typename T, typename A, int VEC, bool INTERLEAVED>
__global__ void rope_windowed_kernel(const KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* cos_t = reinterpret_cast<A*>(smem_raw);
  const int64_t half = args.rotary_dim / 2;
  A* sin_t = cos_t + half;

  const int64_t token = blockIdx.x;
  const int64_t b = token / args.S, s = token % args.S;
  int64_t pos = s;
  if (args.offsets != nullptr) {
    const int64_t idx = b * args.num_windows + s / args.window_size;
    const int64_t o = args.offsets_int64 ? static_cast<const int64_t*>(args.offsets)[idx]
                                         : static_cast<const int32_t*>(args.offsets)[idx];
    pos = o + s % args.window_size;
  }
  const float pf = static_cast<float>(pos);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float theta = static_cast<float>(
        pow(args.base, -2.0 * static_cast<double>(i) / static_cast<double>(args.rotary_dim)));
    const float angle = pf * theta;
    A sn, cs;
    if constexpr (sizeof(A) == 8) {
      sincos(static_cast<double>(angle), &sn, &cs);
    } else {
      sincosf(angle, &sn, &cs);
    }
    cos_t[i] = cs;
    sin_t[i] = static_cast<A>(args.sign) * sn;
  }
  __syncthreads();

  using P = Pack<T, VEC>;
  const int64_t n_rot = INTERLEAVED ? args.rotary_dim / VEC : half / VEC;
  const int64_t n_pass = (args.D - args.rotary_dim) / VEC;
  const int64_t per_head = n_rot + n_pass;
  const int64_t items0 = args.t[0].H * per_head;
  const int64_t items = items0 + (args.num_tensors > 1 ? args.t[1].H * per_head : 0);

  for (int64_t item = threadIdx.x; item < items; item += blockDim.x) {
    const bool second = item >= items0;
    const DevTensor& x = args.t[second ? 1 : 0];
    const int64_t local = second ? item - items0 : item;
    const int64_t h = local / per_head, c = local % per_head;
    const T* in = static_cast<const T*>(x.in) + b * x.in_sb + s * x.in_ss + h * x.in_sh;
    T* out = static_cast<T*>(x.out) + b * x.out_sb + s * x.out_ss + h * x.out_sh;
    if (c >= n_rot) {  // pass-through chunk
      const int64_t ch = args.rotary_dim + (c - n_rot) * VEC;
      *reinterpret_cast<P*>(out + ch) = *reinterpret_cast<const P*>(in + ch);
    } else if (!INTERLEAVED) {
      const int64_t i0 = c * VEC;
      const P lo = *reinterpret_cast<const P*>(in + i0);
      const P hi = *reinterpret_cast<const P*>(in + i0 + half);
      P olo, ohi;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const A x1 = dev_to_acc(lo.v[j]), x2 = dev_to_acc(hi.v[j]);
        const A cj = cos_t[i0 + j], sj = sin_t[i0 + j];
        olo.v[j] = dev_from_acc<T>(x1 * cj - x2 * sj);
        ohi.v[j] = dev_from_acc<T>(x2 * cj + x1 * sj);
      }
      *reinterpret_cast<P*>(out + i0) = olo;
      *reinterpret_cast<P*>(out + i0 + half) = ohi;
    } else {
      if constexpr (VEC >= 2) {
        const int64_t ch0 = c * VEC;
        const P v = *reinterpret_cast<const P*>(in + ch0);
        P o;
#pragma unroll
        for (int j = 0; j < VEC / 2; ++j) {
          const int64_t i = ch0 / 2 + j;
          const A x1 = dev_to_acc(v.v[2 * j]), x2 = dev_to_acc(v.v[2 * j + 1]);
          o.v[2 * j] = dev_from_acc<T>(x1 * cos_t[i] - x2 * sin_t[i]);
          o.v[2 * j + 1] = dev_from_acc<T>(x2 * cos_t[i] + x1 * sin_t[i]);
        }
        *reinterpret_cast<P*>(out + ch0) = o;
      } else {
        // Scalar interleaved path: one item is one channel; it reads its partner.
        const int64_t ch = c, i = ch / 2;
        const A xs = dev_to_acc(in[ch]), xp = dev_to_acc(in[ch ^ 1]);
        out[ch] = dev_from_acc<T>((ch & 1) ? xs * cos_t[i] + xp * sin_t[i]
                                           : xs * cos_t[i] - xp * sin_t[i]);
      }
    }
  }
}

bool aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

template <typename HostT>
cudaError_t launch(const RopeParams& p, const RopeTensor* tensors, int num_tensors,
                   cudaStream_t stream) {
  using T = typename DeviceType<HostT>::type;
  using A = typename DeviceAcc<T>::type;
  constexpr int kVec = 16 / static_cast<int>(sizeof(T));

  KernelArgs args{};
  args.num_tensors = num_tensors;
  args.S = p.S;
  args.D = p.D;
  args.window_size = p.window_size;
  args.num_windows = p.num_windows;
  args.rotary_dim = p.rotary_dim;
  args.offsets = p.window_offsets;
  args.offsets_int64 = p.offsets_int64;
  args.base = p.base;
  args.sign = p.sign;

  const int64_t half = p.rotary_dim / 2;
  bool vec_ok = p.D % kVec == 0 && (p.D - p.rotary_dim) % kVec == 0 &&
                (p.interleaved ? p.rotary_dim % kVec == 0 : half % kVec == 0);
  for (int k = 0; k < num_tensors; ++k) {
    const RopeTensor& x = tensors[k];
    args.t[k] =
        DevTensor{x.in, x.out, x.H, x.in_sb, x.in_ss, x.in_sh, x.out_sb, x.out_ss, x.out_sh};
    vec_ok = vec_ok && aligned_to(x.in, 16) && aligned_to(x.out, 16) && x.in_sb % kVec == 0 &&
             x.in_ss % kVec == 0 && x.in_sh % kVec == 0 && x.out_sb % kVec == 0 &&
             x.out_ss % kVec == 0 && x.out_sh % kVec == 0;
  }
  const int vec = vec_ok ? kVec : 1;
  int64_t heads = 0;
  for (int k = 0; k < num_tensors; ++k) heads += tensors[k].H;
  const int64_t per_head =
      (p.interleaved ? p.rotary_dim / vec : half / vec) + (p.D - p.rotary_dim) / vec;
  const int64_t items = heads * per_head;
  int threads = static_cast<int>(((items + 31) / 32) * 32);
  threads = threads < 64 ? 64 : (threads > 256 ? 256 : threads);
  const dim3 grid(static_cast<unsigned>(p.B * p.S));
  const size_t smem = 2 * static_cast<size_t>(half) * sizeof(A);
  if (p.B * p.S == 0) return cudaSuccess;

  if (vec_ok) {
    if (p.interleaved)
      rope_windowed_kernel<T, A, kVec, true><<<grid, threads, smem, stream>>>(args);
    else
      rope_windowed_kernel<T, A, kVec, false><<<grid, threads, smem, stream>>>(args);
  } else {
    if (p.interleaved)
      rope_windowed_kernel<T, A, 1, true><<<grid, threads, smem, stream>>>(args);
    else
      rope_windowed_kernel<T, A, 1, false><<<grid, threads, smem, stream>>>(args);
  }
  return cudaGetLastError();
}

}  // namespace

int rope_windowed_cuda(DType dtype, const RopeParams& p, const RopeTensor* tensors, int num_tensors,
                       void* stream) {
  if (num_tensors < 1 || num_tensors > 2) return static_cast<int>(cudaErrorInvalidValue);
  const auto st = static_cast<cudaStream_t>(stream);
  return static_cast<int>(dispatch_dtype(dtype, cudaErrorInvalidValue, [&](auto t) {
    return launch<decltype(t)>(p, tensors, num_tensors, st);
  }));
}

}  // namespace af2
