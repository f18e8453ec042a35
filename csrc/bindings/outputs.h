// Small helpers shared by the activation, loss and linear bindings: shape
// agreement between arrays and optional gradient outputs.
#pragma once

#include <pybind11/stl.h>  // OptArray (std::optional) arguments: every TU must see one caster

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
