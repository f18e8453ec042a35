// The one parser of PyTorch's int-or-pair arguments (kernel_size, stride,
// padding, dilation, output_size) for the kiln.kernels functions that take
// them. nn.functional normalizes these in Python before calling; this parser
// keeps kiln.kernels' own forms working, with one rule for every op:
//   an int (a Python int or a NumPy integer, not a bool), or a sequence (not a
//   str) of one or two of them, one meaning both; each within int32.
// TypeError for any other form, ValueError for a value out of range.
#pragma once

#include <array>
#include <climits>
#include <string>

#include "bindings/arrays.h"

namespace kiln::bind {

// One entry of an int-or-pair argument.
inline int64_t window_int(py::handle v, const char* op, const char* name) {
  if (!PyIndex_Check(v.ptr()) || PyBool_Check(v.ptr()))
    fail<TypeError>(op, ": ", name, " must be an int or a pair of ints, got ",
                    py::repr(v).cast<std::string>());
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow || value > INT32_MAX || value < INT32_MIN)
    fail(op, ": ", name, " ", py::repr(v).cast<std::string>(), " is out of range");
  return value;
}

// `v` as (h, w). `none_as` (when given) stands for the None entries of a pair:
// adaptive pooling's output_size keeps the input's size there; it also turns
// off the one-entry form, which PyTorch does not take for output_size.
inline std::array<int64_t, 2> int_pair(py::handle v, const char* op, const char* name,
                                       const std::array<int64_t, 2>* none_as = nullptr) {
  if (PyIndex_Check(v.ptr())) {
    const int64_t k = window_int(v, op, name);
    return {k, k};
  }
  if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(v);
    const size_t n = seq.size();
    if (n == 2 || (n == 1 && !none_as)) {
      std::array<int64_t, 2> out{};
      for (size_t i = 0; i < 2; ++i) {
        const py::object item = seq[n == 2 ? i : 0];
        out[i] = none_as && item.is_none() ? (*none_as)[i] : window_int(item, op, name);
      }
      return out;
    }
  }
  fail<TypeError>(op, ": ", name, " must be an int or a pair of ints, got ",
                  py::repr(v).cast<std::string>());
}

}  // namespace kiln::bind
