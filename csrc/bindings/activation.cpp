// kiln.kernels activations: <op>_forward / <op>_backward on NumPy arrays
// (float32 or float64, C-contiguous, any shape; outputs are new arrays).
#include <string>

#include "bindings/activation_defs.h"
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "cpu/activation.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::out;
using marshal::Scalar;
using activation::prelu_view;
using activation::prelu_weight_numel;
using activation::saved_name;
using activation::softmax_view;
using activation::SoftmaxView;

py::object run_forward(Pointwise op, double param, const py::array& x, const char* fn) {
  const int64_t n = x.size();
  return marshal::call<float, double>(fn, in(x, "input"), out(shape_of(x)), [&](auto* x, auto* y) {
    using T = Scalar<decltype(y)>;
    pointwise_forward<T>(op, static_cast<T>(param), x, y, n);
  });
}

py::object run_backward(Pointwise op, double param, const py::array& dy, const py::array& saved,
                        const char* fn) {
  const char* saved_as = saved_name(pointwise_info(op));
  check_same_shape(dy, saved, fn, "grad_output", saved_as);
  const int64_t n = dy.size();
  return marshal::call<float, double>(
      fn, in(dy, "grad_output"), in(saved, saved_as), out(shape_of(dy)),
      [&](auto* dy, auto* saved, auto* dx) {
        using T = Scalar<decltype(dx)>;
        pointwise_backward<T>(op, static_cast<T>(param), saved, dy, dx, n);
      });
}

// Every name of cpu/pointwise.h's list; the ops sharing a name (its string
// parameter's values) are registered once, by the first.
void def_pointwise_ops(py::module_& m) {
  activation::def_pointwise_pairs<const py::array&>(m, run_forward, run_backward);
  m.def(
      "pointwise_ops",
      [] {
        py::dict ops;
        for (Pointwise op : kPointwiseOps) {
          const PointwiseInfo& info = pointwise_info(op);
          if (ops.contains(info.name)) continue;
          py::dict params;
          if (info.param)
            params[info.param] = info.variant ? py::object(py::str(info.variant))
                                              : py::object(py::float_(info.default_param));
          ops[info.name] = py::dict(py::arg("saved") = saved_name(info), py::arg("params") = params);
        }
        return ops;
      },
      "The pointwise ops' metadata: {name: {'saved': 'input' or 'output' (what "
      "<name>_backward reads besides grad_output), 'params': {name: default}}}.");
}

void def_softmax(py::module_& m, bool log) {
  const char* fwd = log ? "log_softmax_forward" : "softmax_forward";
  const char* bwd = log ? "log_softmax_backward" : "softmax_backward";
  m.def(
      fwd,
      [log, fwd](const py::array& x, int64_t dim) {
        const SoftmaxView v = softmax_view(shape_of(x), dim, fwd);
        return marshal::call<float, double>(
            fwd, in(x, "input"), out(shape_of(x)),
            [&](auto* x, auto* y) { softmax_forward(x, y, v.outer, v.dim, v.inner, log); });
      },
      py::arg("input"), py::arg("dim"),
      log ? "log(softmax(input)) along dim, computed stably (max subtracted). input: any shape; "
            "output: same shape."
          : "exp(x - max) / sum(exp(x - max)) along dim. input: any shape; output: same shape.");
  m.def(
      bwd,
      [log, bwd](const py::array& dy, const py::array& y, int64_t dim) {
        check_same_shape(dy, y, bwd, "grad_output", "output");
        const SoftmaxView v = softmax_view(shape_of(y), dim, bwd);
        return marshal::call<float, double>(
            bwd, in(dy, "grad_output"), in(y, "output"), out(shape_of(y)),
            [&](auto* dy, auto* y, auto* dx) {
              softmax_backward(y, dy, dx, v.outer, v.dim, v.inner, log);
            });
      },
      py::arg("grad_output"), py::arg("output"), py::arg("dim"),
      "Gradient with respect to the input, from grad_output and the forward output (same "
      "shape). Returns grad_input.");
}

}  // namespace

void bind_activation(py::module_& m) {
  def_pointwise_ops(m);
  def_softmax(m, false);
  def_softmax(m, true);

  m.def(
      "prelu_forward",
      [](const py::array& x, const py::array& w) {
        const char* op = "prelu_forward";
        const int64_t wn = prelu_weight_numel(shape_of(x), shape_of(w), op);
        const SoftmaxView v = prelu_view(shape_of(x));
        return marshal::call<float, double>(
            op, in(x, "input"), in(w, "weight"), out(shape_of(x)),
            [&](auto* x, auto* w, auto* y) {
              prelu_forward(x, w, y, v.outer, v.dim, v.inner, wn);
            });
      },
      py::arg("input"), py::arg("weight"),
      "input > 0 ? input : weight[c] * input with c the channel (dimension 1; inputs of rank < 2 "
      "have one channel). weight: scalar, (1,) or (C,).");
  m.def(
      "prelu_backward",
      [](const py::array& dy, const py::array& x, const py::array& w) {
        const char* op = "prelu_backward";
        check_same_shape(dy, x, op, "grad_output", "input");
        const int64_t wn = prelu_weight_numel(shape_of(x), shape_of(w), op);
        const SoftmaxView v = prelu_view(shape_of(x));
        return marshal::call<float, double>(
            op, in(x, "input"), in(dy, "grad_output"), in(w, "weight"), out(shape_of(x)),
            out(shape_of(w)), [&](auto* x, auto* dy, auto* w, auto* dx, auto* dw) {
              prelu_backward(x, w, dy, dx, dw, v.outer, v.dim, v.inner, wn);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"),
      "Returns (grad_input, grad_weight): grad_input like input, grad_weight like weight.");
}

}  // namespace kiln::bind
