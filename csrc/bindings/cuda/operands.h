// What the kernel bindings of kiln._C_cuda share beyond view_of(): the operand checks
// (the same ValueError/TypeError texts as the CPU bindings, made before anything is
// launched), outputs, and the launch on the operands' device with the GIL released.
//
// The operands of a kernel binding beyond the first: each has the
// first operand's dtype and device (TypeError / ValueError naming the op and the
// operand otherwise), optional ones may be None (a null pointer), and outputs not
// asked for are None. The first operand is read with view_of and picks the dtype
// (dispatch_float) and `launch` runs the kernel; see device_array.h.
#pragma once

#include <pybind11/stl.h>  // shapes (input_shape, ...) and optional ints as arguments

#include <memory>
#include <optional>
#include <string>

#include "bindings/cuda/device_array.h"
#include "common/check.h"
#include "cuda/runtime.h"

namespace kiln::cuda::bind {

using ArrayPtr = std::shared_ptr<DeviceArray>;

// obj read as an operand of `like`'s dtype on `like`'s device.
inline DeviceView operand(py::handle obj, const DeviceView& like, const char* op,
                          const char* name) {
  const DeviceView v = view_of(obj, op, name);
  check_dtype(v, like.dtype, op, name);
  check_same_device(like, v, op);
  return v;
}

// The same with a dtype of its own (indices: int64).
inline DeviceView operand(py::handle obj, const DeviceView& like, Dtype dtype, const char* op,
                          const char* name) {
  const DeviceView v = view_of(obj, op, name);
  check_dtype(v, dtype, op, name);
  check_same_device(like, v, op);
  return v;
}

// None: absent.
inline std::optional<DeviceView> optional_operand(py::handle obj, const DeviceView& like,
                                                  const char* op, const char* name) {
  if (obj.is_none()) return std::nullopt;
  return operand(obj, like, op, name);
}

template <typename T>
T* ptr_or_null(const std::optional<DeviceView>& v) {
  return v ? v->ptr<T>() : nullptr;
}

// A new array of `shape` with like's dtype and device, or null when not wanted.
inline ArrayPtr output(const Shape& shape, const DeviceView& like, bool wanted = true) {
  return wanted ? DeviceArray::empty(shape, like.dtype, like.device) : nullptr;
}

template <typename T>
T* ptr_or_null(const ArrayPtr& a) {
  return a ? a->ptr<T>() : nullptr;
}

// The array, or None for an output not asked for.
inline py::object or_none(const ArrayPtr& a) {
  return a ? py::cast(a) : py::object(py::none());
}

// Calls f(T{}) with T the first operand's dtype (float or double; TypeError naming
// op and name otherwise) on its device, with the GIL released: the kernel launch.
template <typename F>
void launch(const DeviceView& first, const char* op, const char* name, F&& f) {
  dispatch_float(first, op, name, [&](auto zero) {
    py::gil_scoped_release release;
    DeviceGuard guard(first.device);
    f(zero);
  });
}

inline void check_same_shape(const DeviceView& a, const DeviceView& b, const char* op,
                             const char* a_name, const char* b_name) {
  if (a.shape != b.shape)
    fail<ValueError>(op, ": ", a_name, " shape ", shape_str(a.shape), " does not match ", b_name,
                     " shape ", shape_str(b.shape));
}

// An operand that must share the dispatching operand's dtype and device.
inline void check_like(const DeviceView& v, const DeviceView& first, const char* op,
                       const char* name) {
  check_dtype(v, first.dtype, op, name);
  check_same_device(v, first, op);
}

// The docstring of a twin whose CPU binding documents it.
inline std::string twin_doc(const char* name) {
  return std::string("The CUDA twin of kiln._C.") + name +
         ": the same arguments, checks and results, on CUDA arrays.";
}

// Runs launch() on `device` with the GIL released (kernels only enqueue work on the
// device's stream; errors still propagate as exceptions).
template <typename F>
void launch_on(int device, F&& launch) {
  py::gil_scoped_release release;
  DeviceGuard guard(device);
  launch();
}

}  // namespace kiln::cuda::bind
