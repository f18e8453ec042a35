// What the activation bindings of both backends share (bindings/activation.cpp on
// NumPy arrays, bindings/cuda/activation.cpp on CUDA arrays): the generation of
// <name>_forward / <name>_backward from cpu/pointwise.h's one list, with the same
// Python names, arguments, defaults and docstrings on either device, and the
// (outer, dim, inner) views of softmax and prelu.
#pragma once

#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <utility>

#include "common/check.h"
#include "cpu/pointwise.h"

namespace kiln::bind::activation {

namespace py = pybind11;

inline const char* saved_name(const PointwiseInfo& info) {
  return info.saved == Saved::Output ? "output" : "input";
}

// The op named info.name whose string parameter is `value`; ValueError naming the
// choices otherwise.
inline Pointwise variant_of(const PointwiseInfo& info, const std::string& value, const char* fn) {
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
// *param); resolve(fn, param...) gives the op to run and its numeric parameter, and
// forward(op, value, x, fn) / backward(op, value, dy, saved, fn) run it.
template <typename Array, typename... Param, typename Resolve, typename Forward, typename Backward,
          typename... ParamArg>
void def_pair(py::module_& m, const PointwiseInfo& info, Resolve resolve, Forward forward,
              Backward backward, const ParamArg&... param_arg) {
  const std::string fwd = std::string(info.name) + "_forward";
  const std::string bwd = std::string(info.name) + "_backward";
  const char* saved = saved_name(info);
  m.def(
      fwd.c_str(),
      [resolve, forward, fwd](Array x, Param... p) {
        const auto [op, value] = resolve(fwd.c_str(), p...);
        return forward(op, value, x, fwd.c_str());
      },
      py::arg("input"), param_arg...,
      (std::string(info.formula) +
       ", elementwise. input: any shape, float32/float64; output: same shape.")
          .c_str());
  m.def(
      bwd.c_str(),
      [resolve, backward, bwd](Array dy, Array s, Param... p) {
        const auto [op, value] = resolve(bwd.c_str(), p...);
        return backward(op, value, dy, s, bwd.c_str());
      },
      py::arg("grad_output"), py::arg(saved), param_arg...,
      (std::string("Gradient with respect to the input, from grad_output and the forward ") +
       saved + " (same shape). Returns grad_input.")
          .c_str());
}

// Every name of cpu/pointwise.h's list, with Array the binding's array argument
// type; the ops sharing a name (its string parameter's values) are registered once,
// by the first.
template <typename Array, typename Forward, typename Backward>
void def_pointwise_pairs(py::module_& m, Forward forward, Backward backward) {
  for (Pointwise op : kPointwiseOps) {
    const PointwiseInfo& info = pointwise_info(op);
    if (py::hasattr(m, (std::string(info.name) + "_forward").c_str())) continue;
    if (!info.param) {
      def_pair<Array>(
          m, info, [op](const char*) { return std::pair(op, 0.0); }, forward, backward);
    } else if (!info.variant) {
      def_pair<Array, double>(
          m, info, [op](const char*, double p) { return std::pair(op, p); }, forward, backward,
          py::arg(info.param) = info.default_param);
    } else {
      def_pair<Array, const std::string&>(
          m, info,
          [&info](const char* fn, const std::string& value) {
            return std::pair(variant_of(info, value, fn), 0.0);
          },
          forward, backward, py::arg(info.param) = std::string(info.variant));
    }
  }
}

// (outer, dim, inner) view of `shape` around dimension `dim` (negative counts from the end).
struct SoftmaxView {
  int64_t outer = 1, dim = 1, inner = 1;
};

inline SoftmaxView softmax_view(const Shape& shape, int64_t dim, const char* op) {
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

// PReLU's channel view: channels are dimension 1; inputs of rank < 2 have one channel.
inline SoftmaxView prelu_view(const Shape& s) {
  if (s.size() < 2) {
    SoftmaxView v;
    for (int64_t d : s) v.inner *= d;
    return v;
  }
  return softmax_view(s, 1, "prelu");
}

// The weight's element count (1 or C), checked against the input x.
inline int64_t prelu_weight_numel(const Shape& x, const Shape& w, const char* op) {
  const SoftmaxView v = prelu_view(x);
  int64_t numel = 1;
  for (int64_t d : w) numel *= d;
  if (w.size() > 1 || (numel != 1 && numel != v.dim))
    fail<ValueError>(op, ": weight of shape ", shape_str(w), " must be a scalar or 1-D with 1 or ",
                     v.dim, " elements for input of shape ", shape_str(x));
  return numel;
}

}  // namespace kiln::bind::activation
