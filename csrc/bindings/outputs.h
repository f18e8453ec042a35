// Shape agreement between two arrays, and optional gradient outputs for the
// bindings not yet on marshal::call (its out(shape, wanted) does the same).
#pragma once

#include <utility>

#include "bindings/arrays.h"

namespace kiln::bind {

inline void check_same_shape(const py::array& a, const py::array& b, const char* op,
                             const char* a_name, const char* b_name) {
  if (shape_of(a) != shape_of(b))
    fail<ValueError>(op, ": ", a_name, " shape ", shape_str(shape_of(a)), " does not match ",
                     b_name, " shape ", shape_str(shape_of(b)));
}

// A new array of `shape` and its data pointer, or (None, nullptr) when not wanted:
// backward kernels skip the gradients nobody asked for.
template <typename T>
std::pair<py::object, T*> maybe_empty(bool wanted, const Shape& shape) {
  if (!wanted) return {py::none(), nullptr};
  auto a = empty<T>(shape);
  T* p = a.mutable_data();
  return {std::move(a), p};
}

}  // namespace kiln::bind
