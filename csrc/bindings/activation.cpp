// kiln.kernels activations: <op>_forward / <op>_backward on NumPy arrays
// (float32 or float64, C-contiguous, any shape; outputs are new arrays).
#include <cstring>
#include <string>
#include <utility>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/outputs.h"
#include "cpu/activation.h"

namespace kiln::bind {
namespace {

const char* saved_name(const PointwiseInfo& info) {
  return info.saved == Saved::Output ? "output" : "input";
}

py::array run_forward(Pointwise op, double param, const py::array& x, const char* fn) {
  return dispatch_float(x, fn, "input", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* px = data<T>(x, fn, "input");
    auto y = empty<T>(shape_of(x));
    T* py_ = y.mutable_data();
    const int64_t n = x.size();
    {
      py::gil_scoped_release nogil;
      pointwise_forward<T>(op, static_cast<T>(param), px, py_, n);
    }
    return y;
  });
}

py::array run_backward(Pointwise op, double param, const py::array& dy, const py::array& saved,
                       const char* fn) {
  const char* saved_as = saved_name(pointwise_info(op));
  return dispatch_float(dy, fn, "grad_output", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* pg = data<T>(dy, fn, "grad_output");
    const T* ps = data<T>(saved, fn, saved_as);
    check_same_shape(dy, saved, fn, "grad_output", saved_as);
    auto dx = empty<T>(shape_of(dy));
    T* pd = dx.mutable_data();
    const int64_t n = dy.size();
    {
      py::gil_scoped_release nogil;
      pointwise_backward<T>(op, static_cast<T>(param), ps, pg, pd, n);
    }
    return dx;
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
        return dispatch_float(x, fwd, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const T* px = data<T>(x, fwd, "input");
          const SoftmaxView v = softmax_view(shape_of(x), dim, fwd);
          auto y = empty<T>(shape_of(x));
          T* py_ = y.mutable_data();
          {
            py::gil_scoped_release nogil;
            softmax_forward<T>(px, py_, v.outer, v.dim, v.inner, log);
          }
          return y;
        });
      },
      py::arg("input"), py::arg("dim"),
      log ? "log(softmax(input)) along dim, computed stably (max subtracted). input: any shape; "
            "output: same shape."
          : "exp(x - max) / sum(exp(x - max)) along dim. input: any shape; output: same shape.");
  m.def(
      bwd,
      [log, bwd](const py::array& dy, const py::array& y, int64_t dim) {
        return dispatch_float(dy, bwd, "grad_output", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const T* pg = data<T>(dy, bwd, "grad_output");
          const T* py_ = data<T>(y, bwd, "output");
          check_same_shape(dy, y, bwd, "grad_output", "output");
          const SoftmaxView v = softmax_view(shape_of(y), dim, bwd);
          auto dx = empty<T>(shape_of(y));
          T* pd = dx.mutable_data();
          {
            py::gil_scoped_release nogil;
            softmax_backward<T>(py_, pg, pd, v.outer, v.dim, v.inner, log);
          }
          return dx;
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
        return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const T* px = data<T>(x, op, "input");
          const T* pw = data<T>(w, op, "weight");
          const int64_t wn = prelu_weight_numel(x, w, op);
          const SoftmaxView v = prelu_view(shape_of(x));
          auto y = empty<T>(shape_of(x));
          T* py_ = y.mutable_data();
          {
            py::gil_scoped_release nogil;
            prelu_forward<T>(px, pw, py_, v.outer, v.dim, v.inner, wn);
          }
          return y;
        });
      },
      py::arg("input"), py::arg("weight"),
      "input > 0 ? input : weight[c] * input with c the channel (dimension 1; inputs of rank < 2 "
      "have one channel). weight: scalar, (1,) or (C,).");
  m.def(
      "prelu_backward",
      [](const py::array& dy, const py::array& x, const py::array& w) {
        const char* op = "prelu_backward";
        return dispatch_float(x, op, "input", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const T* pg = data<T>(dy, op, "grad_output");
          const T* px = data<T>(x, op, "input");
          const T* pw = data<T>(w, op, "weight");
          check_same_shape(dy, x, op, "grad_output", "input");
          const int64_t wn = prelu_weight_numel(x, w, op);
          const SoftmaxView v = prelu_view(shape_of(x));
          auto dx = empty<T>(shape_of(x));
          auto dw = empty<T>(shape_of(w));
          T *pdx = dx.mutable_data(), *pdw = dw.mutable_data();
          {
            py::gil_scoped_release nogil;
            prelu_backward<T>(px, pw, pg, pdx, pdw, v.outer, v.dim, v.inner, wn);
          }
          return py::make_tuple(dx, dw);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"),
      "Returns (grad_input, grad_weight): grad_input like input, grad_weight like weight.");
}

}  // namespace kiln::bind
