// kiln._C_cuda activations: the twins of bindings/activation.cpp on CUDA arrays
// (float32 or float64, C-contiguous, any shape; outputs are new DeviceArrays), with
// the same names, arguments and checks; the pointwise pairs come from the one list
// through bindings/activation_defs.h.
#include "bindings/activation_defs.h"
#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "cuda/activation.h"

namespace kiln::cuda::bind {
namespace {

namespace kc = kiln::cuda;
namespace act = kiln::bind::activation;

py::object run_forward(Pointwise op, double param, const py::object& x_obj, const char* fn) {
  const DeviceView x = view_of(x_obj, fn, "input");
  auto y = DeviceArray::empty_like(x);
  dispatch_float(x, fn, "input", [&](auto zero) {
    using T = decltype(zero);
    launch_on(x.device, [&] {
      kc::pointwise_forward<T>(op, static_cast<T>(param), x.ptr<T>(), y->ptr<T>(), x.numel());
    });
  });
  return py::cast(y);
}

py::object run_backward(Pointwise op, double param, const py::object& dy_obj,
                        const py::object& saved_obj, const char* fn) {
  const char* saved_as = act::saved_name(pointwise_info(op));
  const DeviceView dy = view_of(dy_obj, fn, "grad_output");
  const DeviceView saved = view_of(saved_obj, fn, saved_as);
  check_same_shape(dy, saved, fn, "grad_output", saved_as);
  auto dx = DeviceArray::empty_like(dy);
  dispatch_float(dy, fn, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    check_like(saved, dy, fn, saved_as);
    launch_on(dy.device, [&] {
      kc::pointwise_backward<T>(op, static_cast<T>(param), saved.ptr<T>(), dy.ptr<T>(),
                                dx->ptr<T>(), dy.numel());
    });
  });
  return py::cast(dx);
}

void def_softmax(py::module_& m, bool log) {
  const char* fwd = log ? "log_softmax_forward" : "softmax_forward";
  const char* bwd = log ? "log_softmax_backward" : "softmax_backward";
  m.def(
      fwd,
      [log, fwd](const py::object& x_obj, int64_t dim) {
        const DeviceView x = view_of(x_obj, fwd, "input");
        const act::SoftmaxView v = act::softmax_view(x.shape, dim, fwd);
        auto y = DeviceArray::empty_like(x);
        dispatch_float(x, fwd, "input", [&](auto zero) {
          using T = decltype(zero);
          launch_on(x.device, [&] {
            kc::softmax_forward(x.ptr<T>(), y->ptr<T>(), v.outer, v.dim, v.inner, log);
          });
        });
        return py::cast(y);
      },
      py::arg("input"), py::arg("dim"), twin_doc(fwd).c_str());
  m.def(
      bwd,
      [log, bwd](const py::object& dy_obj, const py::object& y_obj, int64_t dim) {
        const DeviceView dy = view_of(dy_obj, bwd, "grad_output");
        const DeviceView y = view_of(y_obj, bwd, "output");
        check_same_shape(dy, y, bwd, "grad_output", "output");
        const act::SoftmaxView v = act::softmax_view(y.shape, dim, bwd);
        auto dx = DeviceArray::empty_like(dy);
        dispatch_float(dy, bwd, "grad_output", [&](auto zero) {
          using T = decltype(zero);
          check_like(y, dy, bwd, "output");
          launch_on(dy.device, [&] {
            kc::softmax_backward(y.ptr<T>(), dy.ptr<T>(), dx->ptr<T>(), v.outer, v.dim, v.inner,
                                 log);
          });
        });
        return py::cast(dx);
      },
      py::arg("grad_output"), py::arg("output"), py::arg("dim"), twin_doc(bwd).c_str());
}

void def_prelu(py::module_& m) {
  m.def(
      "prelu_forward",
      [](const py::object& x_obj, const py::object& w_obj) {
        const char* op = "prelu_forward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView w = view_of(w_obj, op, "weight");
        const int64_t wn = act::prelu_weight_numel(x.shape, w.shape, op);
        const act::SoftmaxView v = act::prelu_view(x.shape);
        auto y = DeviceArray::empty_like(x);
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          check_like(w, x, op, "weight");
          launch_on(x.device, [&] {
            kc::prelu_forward(x.ptr<T>(), w.ptr<T>(), y->ptr<T>(), v.outer, v.dim, v.inner, wn);
          });
        });
        return py::cast(y);
      },
      py::arg("input"), py::arg("weight"), twin_doc("prelu_forward").c_str());
  m.def(
      "prelu_backward",
      [](const py::object& dy_obj, const py::object& x_obj, const py::object& w_obj) {
        const char* op = "prelu_backward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView dy = view_of(dy_obj, op, "grad_output");
        const DeviceView w = view_of(w_obj, op, "weight");
        check_same_shape(dy, x, op, "grad_output", "input");
        const int64_t wn = act::prelu_weight_numel(x.shape, w.shape, op);
        const act::SoftmaxView v = act::prelu_view(x.shape);
        auto dx = DeviceArray::empty_like(x);
        auto dw = DeviceArray::empty_like(w);
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          check_like(dy, x, op, "grad_output");
          check_like(w, x, op, "weight");
          launch_on(x.device, [&] {
            kc::prelu_backward(x.ptr<T>(), w.ptr<T>(), dy.ptr<T>(), dx->ptr<T>(), dw->ptr<T>(),
                           v.outer, v.dim, v.inner, wn);
          });
        });
        return py::make_tuple(dx, dw);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"),
      twin_doc("prelu_backward").c_str());
}

}  // namespace

void bind_activation(py::module_& m) {
  act::def_pointwise_pairs<const py::object&>(m, run_forward, run_backward);
  def_softmax(m, false);
  def_softmax(m, true);
  def_prelu(m);
}

}  // namespace kiln::cuda::bind
