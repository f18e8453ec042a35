// kiln.kernels activations: <op>_forward / <op>_backward on NumPy arrays
// (float32 or float64, C-contiguous, any shape; outputs are new arrays).
#include <cstring>
#include <string>
#include <utility>

#include "bindings/families.h"
#include "bindings/marshal.h"
#include "cpu/activation.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::out;
using marshal::Scalar;

const char* saved_name(const PointwiseInfo& info) {
  return info.saved == Saved::Output ? "output" : "input";
}

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

// The op named info.name whose string parameter is `value`; ValueError naming the
// choices otherwise.
Pointwise variant_of(const PointwiseInfo& info, const std::string& value, const char* fn) {
  std::string choices;
  for (Pointwise op : kPointwiseOps) {
    const PointwiseInfo& other = pointwise_info(op);
    if (std::strcmp(other.name, info.name) != 0) continue;
    if (value == other.variant) return op;
    choices += (choices.empty() ? "'" : " or '") + std::string(other.variant) + "'";
  }
  fail<ValueError>(fn, ": ", info.param, " must be ", choices, ", got '", value, "'");
}

// Registers <name>_forward(input, *param) and <name>_backward(grad_output, saved,
// *param); resolve(fn, param...) gives the op to run and its numeric parameter.
template <typename... Param, typename Resolve, typename... ParamArg>
void def_pair(py::module_& m, const PointwiseInfo& info, Resolve resolve,
              const ParamArg&... param_arg) {
  const std::string fwd = std::string(info.name) + "_forward";
  const std::string bwd = std::string(info.name) + "_backward";
  const char* saved = saved_name(info);
  m.def(
      fwd.c_str(),
      [resolve, fwd](const py::array& x, Param... p) {
        const auto [op, value] = resolve(fwd.c_str(), p...);
        return run_forward(op, value, x, fwd.c_str());
      },
      py::arg("input"), param_arg...,
      (std::string(info.formula) +
       ", elementwise. input: any shape, float32/float64; output: same shape.")
          .c_str());
  m.def(
      bwd.c_str(),
      [resolve, bwd](const py::array& dy, const py::array& s, Param... p) {
        const auto [op, value] = resolve(bwd.c_str(), p...);
        return run_backward(op, value, dy, s, bwd.c_str());
      },
      py::arg("grad_output"), py::arg(saved), param_arg...,
      (std::string("Gradient with respect to the input, from grad_output and the forward ") +
       saved + " (same shape). Returns grad_input.")
          .c_str());
}

// Every name of cpu/pointwise.h's list; the ops sharing a name (its string
// parameter's values) are registered once, by the first.
void def_pointwise_ops(py::module_& m) {
  for (Pointwise op : kPointwiseOps) {
    const PointwiseInfo& info = pointwise_info(op);
    if (py::hasattr(m, (std::string(info.name) + "_forward").c_str())) continue;
    if (!info.param) {
      def_pair<>(m, info, [op](const char*) { return std::pair(op, 0.0); });
    } else if (!info.variant) {
      def_pair<double>(
          m, info, [op](const char*, double p) { return std::pair(op, p); },
          py::arg(info.param) = info.default_param);
    } else {
      def_pair<const std::string&>(
          m, info,
          [&info](const char* fn, const std::string& value) {
            return std::pair(variant_of(info, value, fn), 0.0);
          },
          py::arg(info.param) = std::string(info.variant));
    }
  }
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

// (outer, dim, inner) view of `shape` around dimension `dim` (negative counts from the end).
struct SoftmaxView {
  int64_t outer = 1, dim = 1, inner = 1;
};

SoftmaxView softmax_view(const Shape& shape, int64_t dim, const char* op) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  const int64_t lo = nd == 0 ? -1 : -nd, hi = nd == 0 ? 0 : nd - 1;
  if (dim < lo || dim > hi)
    fail<ValueError>(op, ": dim ", dim, " is out of range for input of shape ", shape_str(shape),
                     " (expected ", lo, " to ", hi, ")");
  SoftmaxView v;
  if (nd == 0) return v;
  if (dim < 0) dim += nd;
  for (int64_t i = 0; i < dim; ++i) v.outer *= shape[i];
  v.dim = shape[dim];
  for (int64_t i = dim + 1; i < nd; ++i) v.inner *= shape[i];
  return v;
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

// PReLU's channel view: channels are dimension 1; inputs of rank < 2 have one channel.
SoftmaxView prelu_view(const Shape& s) {
  if (s.size() < 2) {
    SoftmaxView v;
    for (int64_t d : s) v.inner *= d;
    return v;
  }
  return softmax_view(s, 1, "prelu");
}

int64_t prelu_weight_numel(const py::array& x, const py::array& w, const char* op) {
  const SoftmaxView v = prelu_view(shape_of(x));
  if (w.ndim() > 1 || (w.size() != 1 && w.size() != v.dim))
    fail<ValueError>(op, ": weight of shape ", shape_str(shape_of(w)), " must be a scalar or 1-D "
                     "with 1 or ", v.dim, " elements for input of shape ", shape_str(shape_of(x)));
  return w.size();
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
        const int64_t wn = prelu_weight_numel(x, w, op);
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
        const int64_t wn = prelu_weight_numel(x, w, op);
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
