// The operand checks the kernel bindings of kiln._C_cuda share, beyond view_of():
// the same ValueError/TypeError texts as the CPU bindings (bindings/arrays.h), made
// before anything is launched; and the launch itself, on the operands' device with
// the GIL released.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "bindings/cuda/device_array.h"
#include "common/check.h"
#include "cuda/runtime.h"

namespace kiln::cuda::bind {

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
