// A check the optimizer and clipping bindings of both backends share
// (bindings/optim.cpp, bindings/cuda/optim.cpp).
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "common/check.h"

namespace kiln::bind::optim {

// Fails if two entries of a list updated in place share their data: they would be
// updated twice (and race). seen: (data, index) pairs.
inline void check_distinct(const char* op, const char* list,
                           std::vector<std::pair<const void*, size_t>>& seen) {
  std::sort(seen.begin(), seen.end());
  for (size_t k = 1; k < seen.size(); ++k)
    if (seen[k].first == seen[k - 1].first)
      fail(op, ": ", list, "[", std::min(seen[k].second, seen[k - 1].second), "] and ", list,
           "[", std::max(seen[k].second, seen[k - 1].second), "] are the same array");
}

}  // namespace kiln::bind::optim
