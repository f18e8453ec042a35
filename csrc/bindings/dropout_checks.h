// The mask shapes of the dropout bindings of both backends (bindings/dropout.cpp,
// bindings/cuda/dropout.cpp): the same checks and errors on either device.
#pragma once

#include <algorithm>

#include "common/check.h"

namespace kiln::bind::dropout {

// dropout2d's mask: input's leading (N, C).
inline Shape dropout2d_mask_shape(const Shape& input) {
  if (input.size() < 2)
    fail("dropout2d: expected input of shape (N, C, *) with at least 2 dimensions, got ",
         shape_str(input));
  return {input[0], input[1]};
}

// The backward's mask must be grad_output's shape or a leading part of it.
inline void check_mask_shape(const Shape& grad, const Shape& mask, const char* op) {
  if (mask.size() > grad.size() || !std::equal(mask.begin(), mask.end(), grad.begin()))
    fail(op, ": mask ", shape_str(mask), " must be grad_output's shape ", shape_str(grad),
         " or a leading part of it");
}

// The elements one mask entry covers.
inline int64_t inner_of(int64_t groups, int64_t numel) { return groups > 0 ? numel / groups : 0; }

}  // namespace kiln::bind::dropout
