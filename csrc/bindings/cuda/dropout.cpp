// kiln._C_cuda dropout: the twins of bindings/dropout.cpp on CUDA arrays, with the
// same Philox counters (cuda/dropout.h), so a (seed, offset) gives the same mask on
// either device.
#include <pybind11/stl.h>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/dropout_checks.h"
#include "cpu/dropout.h"
#include "cuda/dropout.h"

namespace kiln::cuda::bind {
namespace {

namespace kc = kiln::cuda;
namespace dc = kiln::bind::dropout;

// Draws a mask of `mask_shape` (a leading part of input's shape) and applies it:
// (output, mask).
py::tuple dropout_apply(const char* op, const DeviceView& x, const Shape& mask_shape, double p,
                        uint64_t seed, uint64_t offset) {
  check_dropout_p(op, p);
  int64_t groups = 1;
  for (int64_t d : mask_shape) groups *= d;
  const int64_t inner = dc::inner_of(groups, x.numel());
  auto y = DeviceArray::empty_like(x);
  auto mask = DeviceArray::empty(mask_shape, Dtype::UInt8, x.device);
  dispatch_float(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    launch_on(x.device, [&] {
      kc::dropout_forward(x.ptr<T>(), y->ptr<T>(), mask->ptr<uint8_t>(), groups, inner, p, seed,
                          offset);
    });
  });
  return py::make_tuple(y, mask);
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def(
      "dropout_forward",
      [](const py::object& x_obj, double p, uint64_t seed, uint64_t offset) {
        const DeviceView x = view_of(x_obj, "dropout", "input");
        return dropout_apply("dropout", x, x.shape, p, seed, offset);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"), py::arg("offset"),
      twin_doc("dropout_forward").c_str());
  m.def(
      "dropout2d_forward",
      [](const py::object& x_obj, double p, uint64_t seed, uint64_t offset) {
        const DeviceView x = view_of(x_obj, "dropout2d", "input");
        return dropout_apply("dropout2d", x, dc::dropout2d_mask_shape(x.shape), p, seed, offset);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"), py::arg("offset"),
      twin_doc("dropout2d_forward").c_str());
  m.def(
      "dropout_backward",
      [](const py::object& g_obj, const py::object& mask_obj, double p) {
        const char* op = "dropout_backward";
        const DeviceView g = view_of(g_obj, op, "grad_output");
        const DeviceView mask = view_of(mask_obj, op, "mask");
        dc::check_mask_shape(g.shape, mask.shape, op);
        const int64_t groups = mask.numel(), inner = dc::inner_of(groups, g.numel());
        auto dx = DeviceArray::empty_like(g);
        dispatch_float(g, op, "grad_output", [&](auto zero) {
          using T = decltype(zero);
          check_dtype(mask, Dtype::UInt8, op, "mask");
          check_same_device(mask, g, op);
          launch_on(g.device, [&] {
            kc::dropout_backward(g.ptr<T>(), mask.ptr<uint8_t>(), dx->ptr<T>(), groups, inner, p);
          });
        });
        return dx;
      },
      py::arg("grad_output"), py::arg("mask"), py::arg("p"), twin_doc("dropout_backward").c_str());
}

}  // namespace kiln::cuda::bind
