// kiln.kernels losses on NumPy arrays: float32/float64 inputs, int64 class indices.
// reduction is 'mean', 'sum' or 'none'; the loss is a 0-D array unless 'none'.
#include <string>

#include "bindings/families.h"
#include "bindings/loss_checks.h"
#include "bindings/marshal.h"
#include "cpu/loss.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::out;
using marshal::Scalar;
using loss::check_class_targets;
using loss::check_upstream;
using loss::loss_shape;
using loss::per_position_shape;

std::optional<Shape> shape_or_none(const OptArray& a) {
  return a ? std::optional<Shape>(shape_of(*a)) : std::nullopt;
}

// binary_cross_entropy_with_logits' weight / pos_weight broadcast to the input's
// shape (NumPy rules), contiguous; nullopt when absent.
OptArray broadcast_to(const OptArray& a, const py::array& like, const char* op, const char* name) {
  if (!a) return a;
  auto np = py::module_::import("numpy");
  try {
    return py::array(np.attr("ascontiguousarray")(
        np.attr("broadcast_to")(*a, py::tuple(py::cast(shape_of(like))))));
  } catch (const py::error_already_set&) {
    fail<ValueError>(op, ": ", name, " of shape ", shape_str(shape_of(*a)),
                     " cannot be broadcast to the input shape ", shape_str(shape_of(like)));
  }
}

// Class-probability targets (the input's shape and dtype) rather than int64 indices.
bool holds_probabilities(const py::array& target) { return target.dtype().kind() == 'f'; }

// What every class loss checks the same way: input (N, C, ...), the reduction and
// the class weights' shape.
struct ClassArgs {
  ClassDims d;
  Reduction r;
};

ClassArgs class_args(const py::array& x, const OptArray& weight, const std::string& reduction,
                     const char* op) {
  const ClassDims d = loss::class_dims(shape_of(x), op);
  const Reduction r = parse_reduction(reduction, op);
  loss::check_class_weight(shape_or_none(weight), d.C, op);
  return {d, r};
}

void def_class_losses(py::module_& m) {
  m.def(
      "cross_entropy_forward",
      [](const py::array& x, const py::array& target, const OptArray& weight,
         int64_t ignore_index, const std::string& reduction, double label_smoothing) {
        const char* op = "cross_entropy";
        const ClassArgs a = class_args(x, weight, reduction, op);
        const Shape per_term = loss_shape(a.r, per_position_shape(shape_of(x)));
        if (holds_probabilities(target)) {
          check_same_shape(target, x, op, "target (class probabilities)", "input");
          return marshal::call<float, double>(
              op, in(x, "input"), in(target, "target"), opt(weight, "weight"), out(per_term),
              out(shape_of(x)), [&](auto* x, auto* probs, auto* w, auto* loss, auto* logp) {
                using T = Scalar<decltype(loss)>;
                soft_cross_entropy_forward(x, probs, w, a.d, T(label_smoothing), a.r, logp, loss);
                return double(T(a.d.N * a.d.S));
              });
        }
        check_class_targets(shape_of(target), shape_of(x), op);
        return marshal::call<float, double>(
            op, in(x, "input"), in<int64_t>(target, "target"), opt(weight, "weight"),
            out(per_term), out(shape_of(x)),
            [&](auto* x, const int64_t* t, auto* w, auto* loss, auto* logp) {
              using T = Scalar<decltype(loss)>;
              const ClassTargets<T> targets{t, w, ignore_index, T(label_smoothing)};
              return double(cross_entropy_forward(x, a.d, targets, a.r, logp, loss));
            });
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      py::arg("label_smoothing") = 0.0,
      "Fused log_softmax + negative log likelihood over dimension 1. input: (N, C) or (N, C, d1, "
      "...); target: int64 class indices (N,) or (N, d1, ...), or class probabilities of the "
      "input's shape and dtype; weight: (C,) or None. Returns (loss, log_probs, total_weight): "
      "loss 0-D, or (N, d1, ...) for reduction='none'; log_probs like input; total_weight the "
      "mean's divisor, which cross_entropy_backward needs.");
  m.def(
      "cross_entropy_backward",
      [](const py::array& dloss, const py::array& logp, const py::array& target,
         double total_weight, const OptArray& weight, int64_t ignore_index,
         const std::string& reduction, double label_smoothing, bool target_grad) -> py::object {
        const char* op = "cross_entropy_backward";
        const ClassArgs a = class_args(logp, weight, reduction, op);
        check_upstream(shape_of(dloss), a.r, per_position_shape(shape_of(logp)), op);
        if (holds_probabilities(target)) {
          check_same_shape(target, logp, op, "target (class probabilities)", "input");
          return marshal::call<float, double>(
              op, in(logp, "log_probs"), in(dloss, "grad_output"), in(target, "target"),
              opt(weight, "weight"), out(shape_of(logp)), out(shape_of(target), target_grad),
              [&](auto* lp, auto* g, auto* probs, auto* w, auto* dx, auto* dprobs) {
                using T = Scalar<decltype(dx)>;
                soft_cross_entropy_backward(g, lp, probs, w, a.d, T(label_smoothing), a.r, dx,
                                            dprobs);
              });
        }
        check_class_targets(shape_of(target), shape_of(logp), op);
        py::object dx = marshal::call<float, double>(
            op, in(logp, "log_probs"), in(dloss, "grad_output"), in<int64_t>(target, "target"),
            opt(weight, "weight"), out(shape_of(logp)),
            [&](auto* lp, auto* g, const int64_t* t, auto* w, auto* dx) {
              using T = Scalar<decltype(dx)>;
              const ClassTargets<T> targets{t, w, ignore_index, T(label_smoothing)};
              cross_entropy_backward(g, lp, a.d, targets, a.r, T(total_weight), dx);
            });
        return py::make_tuple(dx, py::none());
      },
      py::arg("grad_output"), py::arg("log_probs"), py::arg("target"), py::arg("total_weight"),
      py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0,
      py::arg("target_grad") = false,
      "Gradient of cross_entropy from its saved log_probs and total_weight. Returns (grad_input, "
      "grad_target): grad_target (class-probability targets with target_grad=True) or None.");
  m.def(
      "nll_loss_forward",
      [](const py::array& x, const py::array& target, const OptArray& weight,
         int64_t ignore_index, const std::string& reduction) {
        const char* op = "nll_loss";
        const ClassArgs a = class_args(x, weight, reduction, op);
        check_class_targets(shape_of(target), shape_of(x), op);
        return marshal::call<float, double>(
            op, in(x, "input"), in<int64_t>(target, "target"), opt(weight, "weight"),
            out(loss_shape(a.r, per_position_shape(shape_of(x)))),
            [&](auto* x, const int64_t* t, auto* w, auto* loss) {
              using T = Scalar<decltype(loss)>;
              const ClassTargets<T> targets{t, w, ignore_index, 0};
              return double(nll_loss_forward(x, a.d, targets, a.r, loss));
            });
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      "Negative log likelihood of log-probabilities. input: (N, C) or (N, C, d1, ...); target: "
      "int64 (N,) or (N, d1, ...); weight: (C,) or None. Returns (loss, total_weight).");
  m.def(
      "nll_loss_backward",
      [](const py::array& dloss, const py::array& x, const py::array& target, double total_weight,
         const OptArray& weight, int64_t ignore_index, const std::string& reduction) {
        const char* op = "nll_loss_backward";
        const ClassArgs a = class_args(x, weight, reduction, op);
        check_upstream(shape_of(dloss), a.r, per_position_shape(shape_of(x)), op);
        check_class_targets(shape_of(target), shape_of(x), op);
        // input only fixes the dtype and the shape: the gradient does not read it.
        return marshal::call<float, double>(
            op, in(x, "input"), in(dloss, "grad_output"), in<int64_t>(target, "target"),
            opt(weight, "weight"), out(shape_of(x)),
            [&](auto*, auto* g, const int64_t* t, auto* w, auto* dx) {
              using T = Scalar<decltype(dx)>;
              const ClassTargets<T> targets{t, w, ignore_index, 0};
              nll_loss_backward(g, a.d, targets, a.r, T(total_weight), dx);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("total_weight"),
      py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean",
      "Gradient of nll_loss with respect to input (same shape as input).");
}

// What the elementwise losses check the same way: input and target of one shape,
// an optional weight of that shape too, and the reduction.
Reduction pair_args(const py::array& x, const py::array& y, const OptArray& weight,
                    const std::string& reduction, const char* op) {
  check_same_shape(y, x, op, "target", "input");
  if (weight) check_same_shape(*weight, x, op, "weight", "input");
  return parse_reduction(reduction, op);
}

// Checks, then runs the forward of regression loss `kind` (param: beta or delta).
py::object regression_forward(Regression kind, const char* op, const py::array& x,
                              const py::array& y, const std::string& reduction,
                              const OptArray& weight, double param) {
  const Reduction r = pair_args(x, y, weight, reduction, op);
  const int64_t n = x.size();
  return marshal::call<float, double>(
      op, in(x, "input"), in(y, "target"), opt(weight, "weight"),
      out(loss_shape(r, shape_of(x))), [&](auto* x, auto* y, auto* w, auto* loss) {
        using T = Scalar<decltype(loss)>;
        regression_loss_forward(kind, x, y, w, n, r, loss, T(param));
      });
}

py::object regression_backward(Regression kind, const char* op, const py::array& dloss,
                               const py::array& x, const py::array& y,
                               const std::string& reduction, const OptArray& weight,
                               bool input_grad, bool target_grad, bool weight_grad,
                               double param) {
  const Reduction r = pair_args(x, y, weight, reduction, op);
  check_upstream(shape_of(dloss), r, shape_of(x), op);
  const int64_t n = x.size();
  return marshal::call<float, double>(
      op, in(x, "input"), in(y, "target"), opt(weight, "weight"), in(dloss, "grad_output"),
      out(shape_of(x), input_grad), out(shape_of(x), target_grad),
      out(shape_of(x), weight_grad && weight),
      [&](auto* x, auto* y, auto* w, auto* g, auto* dx, auto* dy, auto* dw) {
        using T = Scalar<decltype(dx)>;
        regression_loss_backward(kind, g, x, y, w, n, r, dx, dy, dw, T(param));
      });
}

std::string regression_doc(const char* formula) {
  return std::string(formula) +
         " per element, times weight when given; input, target and weight of one shape and "
         "dtype. 'mean' divides by the number of elements (by the sum of the weights when "
         "weighted). Returns the loss: 0-D, or input's shape for reduction='none'.";
}

constexpr const char* kRegressionBackwardDoc =
    "Returns (grad_input, grad_target, grad_weight), each None when not requested (grad_weight "
    "also None without a weight).";

// mse_loss, l1_loss: no parameter.
void def_regression(py::module_& m, const char* fwd, const char* bwd, Regression kind,
                    const char* formula) {
  m.def(
      fwd,
      [kind, fwd](const py::array& x, const py::array& y, const std::string& reduction,
                  const OptArray& weight) {
        return regression_forward(kind, fwd, x, y, reduction, weight, 0.0);
      },
      py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), regression_doc(formula).c_str());
  m.def(
      bwd,
      [kind, bwd](const py::array& dloss, const py::array& x, const py::array& y,
                  const std::string& reduction, const OptArray& weight, bool input_grad,
                  bool target_grad, bool weight_grad) {
        return regression_backward(kind, bwd, dloss, x, y, reduction, weight, input_grad,
                                   target_grad, weight_grad, 0.0);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), py::arg("input_grad") = true,
      py::arg("target_grad") = false, py::arg("weight_grad") = false, kRegressionBackwardDoc);
}

// smooth_l1_loss (beta), huber_loss (delta): one scalar parameter, after the weight.
void def_regression_param(py::module_& m, const char* fwd, const char* bwd, Regression kind,
                          const char* formula, const char* param) {
  m.def(
      fwd,
      [kind, fwd](const py::array& x, const py::array& y, const std::string& reduction,
                  const OptArray& weight, double p) {
        return regression_forward(kind, fwd, x, y, reduction, weight, p);
      },
      py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), py::arg(param) = 1.0, regression_doc(formula).c_str());
  m.def(
      bwd,
      [kind, bwd](const py::array& dloss, const py::array& x, const py::array& y,
                  const std::string& reduction, const OptArray& weight, bool input_grad,
                  bool target_grad, bool weight_grad, double p) {
        return regression_backward(kind, bwd, dloss, x, y, reduction, weight, input_grad,
                                   target_grad, weight_grad, p);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), py::arg("input_grad") = true,
      py::arg("target_grad") = false, py::arg("weight_grad") = false, py::arg(param) = 1.0,
      kRegressionBackwardDoc);
}

void def_bce(py::module_& m) {
  m.def(
      "binary_cross_entropy_with_logits_forward",
      [](const py::array& x, const py::array& y, const OptArray& weight,
         const OptArray& pos_weight, const std::string& reduction) {
        const char* op = "binary_cross_entropy_with_logits";
        check_same_shape(y, x, op, "target", "input");
        const Reduction r = parse_reduction(reduction, op);
        const OptArray w = broadcast_to(weight, x, op, "weight");
        const OptArray pw = broadcast_to(pos_weight, x, op, "pos_weight");
        const int64_t n = x.size();
        return marshal::call<float, double>(
            op, in(x, "input"), in(y, "target"), opt(w, "weight"), opt(pw, "pos_weight"),
            out(loss_shape(r, shape_of(x))), [&](auto* x, auto* y, auto* w, auto* pw, auto* loss) {
              bce_with_logits_forward(x, y, w, pw, n, r, loss);
            });
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      "Binary cross entropy on logits, computed stably. input, target: same shape; weight and "
      "pos_weight: None or broadcastable to input (pos_weight typically (C,) along the last "
      "dimension). Returns the loss: 0-D, or input's shape for reduction='none'.");
  m.def(
      "binary_cross_entropy_with_logits_backward",
      [](const py::array& dloss, const py::array& x, const py::array& y, const OptArray& weight,
         const OptArray& pos_weight, const std::string& reduction, bool input_grad,
         bool target_grad) {
        const char* op = "binary_cross_entropy_with_logits_backward";
        check_same_shape(y, x, op, "target", "input");
        const Reduction r = parse_reduction(reduction, op);
        const OptArray w = broadcast_to(weight, x, op, "weight");
        const OptArray pw = broadcast_to(pos_weight, x, op, "pos_weight");
        check_upstream(shape_of(dloss), r, shape_of(x), op);
        const int64_t n = x.size();
        return marshal::call<float, double>(
            op, in(x, "input"), in(y, "target"), opt(w, "weight"), opt(pw, "pos_weight"),
            in(dloss, "grad_output"), out(shape_of(x), input_grad), out(shape_of(x), target_grad),
            [&](auto* x, auto* y, auto* w, auto* pw, auto* g, auto* dx, auto* dy) {
              bce_with_logits_backward(g, x, y, w, pw, n, r, dx, dy);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      py::arg("input_grad") = true, py::arg("target_grad") = false,
      "Returns (grad_input, grad_target), each None when not requested.");
}

void def_bce_probs(py::module_& m) {
  m.def(
      "binary_cross_entropy_forward",
      [](const py::array& x, const py::array& y, const OptArray& weight,
         const std::string& reduction) {
        const char* op = "binary_cross_entropy";
        check_same_shape(y, x, op, "target", "input");
        const Reduction r = parse_reduction(reduction, op);
        const OptArray w = broadcast_to(weight, x, op, "weight");
        const int64_t n = x.size();
        return marshal::call<float, double>(
            op, in(x, "input"), in(y, "target"), opt(w, "weight"),
            out(loss_shape(r, shape_of(x))),
            [&](auto* x, auto* y, auto* w, auto* loss) { bce_forward(x, y, w, n, r, loss); });
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("reduction") = "mean",
      "Binary cross entropy of probabilities, logs clamped to >= -100. input (in [0, 1]), "
      "target: same shape; weight: None or broadcastable to input. Returns the loss: 0-D, or "
      "input's shape for reduction='none'.");
  m.def(
      "binary_cross_entropy_backward",
      [](const py::array& dloss, const py::array& x, const py::array& y, const OptArray& weight,
         const std::string& reduction, bool input_grad, bool target_grad) {
        const char* op = "binary_cross_entropy_backward";
        check_same_shape(y, x, op, "target", "input");
        const Reduction r = parse_reduction(reduction, op);
        const OptArray w = broadcast_to(weight, x, op, "weight");
        check_upstream(shape_of(dloss), r, shape_of(x), op);
        const int64_t n = x.size();
        return marshal::call<float, double>(
            op, in(x, "input"), in(y, "target"), opt(w, "weight"), in(dloss, "grad_output"),
            out(shape_of(x), input_grad), out(shape_of(x), target_grad),
            [&](auto* x, auto* y, auto* w, auto* g, auto* dx, auto* dy) {
              bce_backward(g, x, y, w, n, r, dx, dy);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("reduction") = "mean", py::arg("input_grad") = true,
      py::arg("target_grad") = false,
      "Returns (grad_input, grad_target), each None when not requested.");
}

// multi_margin_loss' shapes: input (N, C) or (C,), target (N,) or (), weight (C,).
struct MarginArgs {
  int64_t N, C;
  Reduction r;
};

MarginArgs margin_args(const py::array& x, const py::array& target, const OptArray& weight,
                       const std::string& reduction, const char* op) {
  const int64_t N = loss::margin_rows(shape_of(x), shape_of(target), op);
  const int64_t C = x.shape(x.ndim() - 1);
  loss::check_class_weight(shape_or_none(weight), C, op);
  return {N, C, parse_reduction(reduction, op)};
}

void def_multi_margin(py::module_& m) {
  m.def(
      "multi_margin_loss_forward",
      [](const py::array& x, const py::array& target, int p, double margin,
         const OptArray& weight, const std::string& reduction) {
        const char* op = "multi_margin_loss";
        const MarginArgs a = margin_args(x, target, weight, reduction, op);
        return marshal::call<float, double>(
            op, in(x, "input"), in<int64_t>(target, "target"), opt(weight, "weight"),
            out(loss_shape(a.r, shape_of(target))),
            [&](auto* x, const int64_t* t, auto* w, auto* loss) {
              using T = Scalar<decltype(loss)>;
              multi_margin_forward(x, t, w, a.N, a.C, p, T(margin), a.r, loss);
            });
      },
      py::arg("input"), py::arg("target"), py::arg("p") = 1, py::arg("margin") = 1.0,
      py::arg("weight") = py::none(), py::arg("reduction") = "mean",
      "Multiclass hinge loss: sum over c != y of weight[y] * max(0, margin - x[y] + x[c])^p / C. "
      "input: (N, C) or (C,); target: int64 (N,) or (); p: 1 or 2; weight: (C,) or None. The "
      "loss is 0-D, or target's shape for reduction='none'.");
  m.def(
      "multi_margin_loss_backward",
      [](const py::array& dloss, const py::array& x, const py::array& target, int p,
         double margin, const OptArray& weight, const std::string& reduction) {
        const char* op = "multi_margin_loss_backward";
        const MarginArgs a = margin_args(x, target, weight, reduction, op);
        check_upstream(shape_of(dloss), a.r, shape_of(target), op);
        return marshal::call<float, double>(
            op, in(x, "input"), in<int64_t>(target, "target"), opt(weight, "weight"),
            in(dloss, "grad_output"), out(shape_of(x)),
            [&](auto* x, const int64_t* t, auto* w, auto* g, auto* dx) {
              using T = Scalar<decltype(dx)>;
              multi_margin_backward(g, x, t, w, a.N, a.C, p, T(margin), a.r, dx);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("p") = 1,
      py::arg("margin") = 1.0, py::arg("weight") = py::none(), py::arg("reduction") = "mean",
      "Gradient of multi_margin_loss with respect to input (same shape as input).");
}

}  // namespace

void bind_loss(py::module_& m) {
  def_class_losses(m);
  def_regression(m, "mse_loss_forward", "mse_loss_backward", Regression::MSE,
                 "(input - target)^2");
  def_regression(m, "l1_loss_forward", "l1_loss_backward", Regression::L1, "|input - target|");
  def_regression_param(m, "smooth_l1_loss_forward", "smooth_l1_loss_backward",
                       Regression::SmoothL1,
                       "|d| < beta ? d^2 / (2 beta) : |d| - beta / 2 with d = input - target",
                       "beta");
  def_regression_param(m, "huber_loss_forward", "huber_loss_backward", Regression::Huber,
                       "|d| < delta ? d^2 / 2 : delta (|d| - delta / 2) with d = input - target",
                       "delta");
  def_bce(m);
  def_bce_probs(m);
  def_multi_margin(m);
}

}  // namespace kiln::bind
