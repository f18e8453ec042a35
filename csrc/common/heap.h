// The C heap's policy for large blocks, set once when kiln._C is imported.
//
// Why: a training step allocates its activations and gradients afresh (NumPy
// arrays of MiBs each) and frees them by the end of the step. glibc's malloc
// serves a block above M_MMAP_THRESHOLD (128 KiB, raised dynamically up to
// 32 MiB) by mmap and gives it back by munmap on free, and returns free memory
// at the heap's top to the system once it exceeds M_TRIM_THRESHOLD; either way
// the next step's block of the same size arrives as fresh zero pages, and each
// 4 KiB page costs a page fault (plus the kernel's zeroing) on first touch:
// tens of thousands of faults per step, time the kernels spend waiting.
// Setting both thresholds fixes the policy: blocks up to kMmapThreshold come
// from the heap, and freed ones stay there for the next step to reuse, so
// after warm-up a step touches no new pages. The cost: the process keeps its
// peak heap (what one step needs at most) instead of handing it back.
//
// KILN_MALLOPT=0 in the environment leaves glibc's defaults alone.
#pragma once

#include <cstddef>

namespace kiln {

// Blocks up to this size come from the heap (glibc's largest allowed value on
// 64-bit systems: 32 MiB).
constexpr std::size_t kMmapThreshold = std::size_t{32} << 20;
// Free memory at the heap's top is returned to the system only above this.
constexpr std::size_t kTrimThreshold = std::size_t{1} << 30;

// Applies the policy above unless KILN_MALLOPT=0 or the C library is not
// glibc; returns whether it was applied.
bool keep_freed_memory();

}  // namespace kiln
