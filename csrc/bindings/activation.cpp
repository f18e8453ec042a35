// kiln.kernels activations: <op>_forward / <op>_backward on NumPy arrays
// (float32 or float64, C-contiguous, any shape; outputs are new arrays).
#include <string>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/outputs.h"
#include "cpu/activation.h"

namespace kiln::bind {
namespace {


py::array pointwise_forward(Pointwise act, double alpha, const py::array& x, const char* op) {
  return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* px = data<T>(x, op, "input");
    auto y = empty<T>(shape_of(x));
    T* py_ = y.mutable_data();
    const int64_t n = x.size();
    {
      py::gil_scoped_release nogil;
      activation_forward<T>(act, static_cast<T>(alpha), px, py_, n);
    }
    return y;
  });
}

py::array pointwise_backward(Pointwise act, double alpha, const py::array& dy,
                             const py::array& saved, const char* op) {
  const char* saved_name = backward_uses_output(act) ? "output" : "input";
  return dispatch_float(dy, op, "grad_output", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* pg = data<T>(dy, op, "grad_output");
    const T* ps = data<T>(saved, op, saved_name);
    check_same_shape(dy, saved, op, "grad_output", saved_name);
    auto dx = empty<T>(shape_of(dy));
    T* pd = dx.mutable_data();
    const int64_t n = dy.size();
    {
      py::gil_scoped_release nogil;
      activation_backward<T>(act, static_cast<T>(alpha), ps, pg, pd, n);
    }
    return dx;
  });
}

Pointwise gelu_kind(const std::string& approximate, const char* op) {
  if (approximate == "none") return Pointwise::GELU;
  if (approximate == "tanh") return Pointwise::GELUTanh;
  fail<ValueError>(op, ": approximate must be 'none' or 'tanh', got '", approximate, "'");
}

// Registers fwd(input) and bwd(grad_output, input|output) for an op without parameters.
void def_plain(py::module_& m, const char* fwd, const char* bwd, Pointwise act,
               const char* formula) {
  const char* saved = backward_uses_output(act) ? "output" : "input";
  m.def(
      fwd, [act, fwd](const py::array& x) { return pointwise_forward(act, 0, x, fwd); },
      py::arg("input"),
      (std::string(formula) + " elementwise; input: any shape, float32/float64. Returns output.")
          .c_str());
  m.def(
      bwd,
      [act, bwd](const py::array& dy, const py::array& s) {
        return pointwise_backward(act, 0, dy, s, bwd);
      },
      py::arg("grad_output"), py::arg(saved),
      (std::string("Gradient with respect to the input, from grad_output and the forward ") +
       saved + " (same shape). Returns grad_input.")
          .c_str());
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
  def_plain(m, "relu_forward", "relu_backward", Pointwise::ReLU, "max(input, 0)");
  def_plain(m, "selu_forward", "selu_backward", Pointwise::SELU,
            "scale * elu(input, alpha) with SELU's fixed constants");
  def_plain(m, "sigmoid_forward", "sigmoid_backward", Pointwise::Sigmoid,
            "1 / (1 + exp(-input))");
  def_plain(m, "tanh_forward", "tanh_backward", Pointwise::Tanh, "tanh(input)");

  m.def(
      "leaky_relu_forward",
      [](const py::array& x, double slope) {
        return pointwise_forward(Pointwise::LeakyReLU, slope, x, "leaky_relu_forward");
      },
      py::arg("input"), py::arg("negative_slope") = 0.01,
      "input > 0 ? input : negative_slope * input, elementwise; any shape.");
  m.def(
      "leaky_relu_backward",
      [](const py::array& dy, const py::array& x, double slope) {
        return pointwise_backward(Pointwise::LeakyReLU, slope, dy, x, "leaky_relu_backward");
      },
      py::arg("grad_output"), py::arg("input"), py::arg("negative_slope") = 0.01,
      "grad_input = grad_output * (input > 0 ? 1 : negative_slope); same shapes.");
  m.def(
      "elu_forward",
      [](const py::array& x, double alpha) {
        return pointwise_forward(Pointwise::ELU, alpha, x, "elu_forward");
      },
      py::arg("input"), py::arg("alpha") = 1.0,
      "input > 0 ? input : alpha * (exp(input) - 1), elementwise; any shape.");
  m.def(
      "elu_backward",
      [](const py::array& dy, const py::array& x, double alpha) {
        return pointwise_backward(Pointwise::ELU, alpha, dy, x, "elu_backward");
      },
      py::arg("grad_output"), py::arg("input"), py::arg("alpha") = 1.0,
      "grad_input = grad_output * (input > 0 ? 1 : alpha * exp(input)); same shapes.");
  m.def(
      "gelu_forward",
      [](const py::array& x, const std::string& approximate) {
        return pointwise_forward(gelu_kind(approximate, "gelu_forward"), 0, x, "gelu_forward");
      },
      py::arg("input"), py::arg("approximate") = "none",
      "input * Phi(input) (approximate='none', exact erf) or its tanh approximation "
      "(approximate='tanh'), elementwise; any shape.");
  m.def(
      "gelu_backward",
      [](const py::array& dy, const py::array& x, const std::string& approximate) {
        return pointwise_backward(gelu_kind(approximate, "gelu_backward"), 0, dy, x,
                                  "gelu_backward");
      },
      py::arg("grad_output"), py::arg("input"), py::arg("approximate") = "none",
      "Gradient of gelu with respect to its input; same shapes.");

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
