#include "common/heap.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace kiln {

bool keep_freed_memory() {
  const char* env = std::getenv("KILN_MALLOPT");
  if (env && std::strcmp(env, "0") == 0) return false;
#if defined(__GLIBC__)
  // mallopt returns 1 on success; M_MMAP_THRESHOLD refuses values above 32 MiB.
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold)) == 1 &&
         mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold)) == 1;
#else
  return false;
#endif
}

}  // namespace kiln
