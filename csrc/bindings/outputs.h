// Shape agreement between two array arguments, shared by the activation and
// loss bindings. (Outputs, wanted or not, are marshal.h's out().)
#pragma once

#include "bindings/arrays.h"

namespace kiln::bind {

inline void check_same_shape(const py::array& a, const py::array& b, const char* op,
                             const char* a_name, const char* b_name) {
  if (shape_of(a) != shape_of(b))
    fail<ValueError>(op, ": ", a_name, " shape ", shape_str(shape_of(a)), " does not match ",
                     b_name, " shape ", shape_str(shape_of(b)));
}

}  // namespace kiln::bind
