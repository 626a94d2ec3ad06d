// Output allocation for bandwidth-bound ops (contiguous; huge-page advice on the CPU).
//
// Large CPU tensors come from fresh anonymous mappings, and the first write to each 4 KiB page
// takes a page fault: for a 100 MB output that costs more than the kernel itself. Where the
// kernel allows transparent huge pages on request ("madvise" mode, common default), advising
// the output's 2 MiB-aligned interior as MADV_HUGEPAGE before the first write cuts the faults
// 512-fold. This is what torch does for all allocations under THP_MEM_ALLOC_ENABLE=1; here it
// is applied to af2's own large outputs only. Pure advice: failure changes nothing.
#pragma once

#include <ATen/ATen.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>

namespace af2::bind {

inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options.memory_format(at::MemoryFormat::Contiguous));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(out.data_ptr());
  const uintptr_t end = begin + out.nbytes();
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (out.device().is_cpu() && last > first && last - first >= 2 * kHuge)
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
  return out;
}

}  // namespace af2::bind
