// Helpers shared by the binding files: NumPy arrays in (no copies), checked for
// dtype, contiguity and rank before any pointer is handed to a kernel.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional arguments (OptArray)

#include <optional>
#include <string>
#include <utility>

#include "common/check.h"

namespace kiln::bind {

namespace py = pybind11;

inline Shape shape_of(const py::array& a) {
  return Shape(a.shape(), a.shape() + a.ndim());
}

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
const char* dtype_label() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else return "?";
}

// Checks dtype T and C-contiguity; returns the data pointer.
template <typename T>
const T* data(const py::array& a, const char* op, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || a.dtype().kind() != py::dtype::of<T>().kind() ||
      a.itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    fail<TypeError>(op, ": expected ", name, " of dtype ", dtype_label<T>(), ", got ",
                    dtype_name(a), " with shape ", shape_str(shape_of(a)));
  if (!(a.flags() & py::array::c_style))
    fail<ValueError>(op, ": ", name, " with shape ", shape_str(shape_of(a)),
                     " must be C-contiguous");
  return static_cast<const T*>(a.data());
}

template <typename T>
T* mutable_data(py::array& a, const char* op, const char* name) {
  const T* p = data<T>(a, op, name);
  if (!a.writeable()) fail<ValueError>(op, ": ", name, " is read-only");
  return const_cast<T*>(p);
}

inline void check_ndim(const py::array& a, std::initializer_list<int> allowed, const char* op,
                       const char* name) {
  for (int n : allowed)
    if (a.ndim() == n) return;
  std::string want;
  for (int n : allowed) want += (want.empty() ? "" : " or ") + std::to_string(n) + "-D";
  fail<ValueError>(op, ": expected ", name, " to be ", want, ", got shape ",
                   shape_str(shape_of(a)));
}

template <typename T>
py::array_t<T> empty(const Shape& shape) {
  return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

inline bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

// Calls f(float{}) or f(double{}) by the floating dtype of `a`; TypeError otherwise.
template <typename F>
auto dispatch_float(const py::array& a, const char* op, const char* name, F&& f) {
  if (a.dtype().is(py::dtype::of<float>())) return f(float{});
  if (a.dtype().is(py::dtype::of<double>())) return f(double{});
  fail<TypeError>(op, ": expected ", name, " of dtype float32 or float64, got ", dtype_name(a),
                  " with shape ", shape_str(shape_of(a)));
}

// An optional array argument (None in Python).
using OptArray = std::optional<py::array>;

}  // namespace kiln::bind
