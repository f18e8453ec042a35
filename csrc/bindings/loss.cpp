// kiln.kernels losses on NumPy arrays: float32/float64 inputs, int64 class indices.
// reduction is 'mean', 'sum' or 'none'; the loss is a 0-D array unless 'none'.
#include <string>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/outputs.h"
#include "cpu/loss.h"

namespace kiln::bind {
namespace {

// (N, C, d1, ...) viewed as (N, C, S).
ClassDims class_dims(const py::array& input, const char* op) {
  if (input.ndim() < 2)
    fail<ValueError>(op, ": expected input of shape (N, C) or (N, C, d1, ...), got ",
                     shape_str(shape_of(input)));
  ClassDims d{input.shape(0), input.shape(1), 1};
  for (py::ssize_t i = 2; i < input.ndim(); ++i) d.S *= input.shape(i);
  return d;
}

// The shape of class-index targets (and of an unreduced loss): input's without C.
Shape per_position_shape(const py::array& input) {
  Shape s = shape_of(input);
  s.erase(s.begin() + 1);
  return s;
}

const int64_t* class_targets(const py::array& target, const py::array& input, const char* op) {
  const int64_t* p = data<int64_t>(target, op, "target");
  const Shape want = per_position_shape(input), got = shape_of(target);
  if (got == want) return p;
  if (input.ndim() == 2 && target.ndim() == 1)
    fail<ValueError>(op, ": expected input batch size (", input.shape(0),
                     ") to match target batch size (", target.shape(0), "): input ",
                     shape_str(shape_of(input)), ", target ", shape_str(got));
  fail<ValueError>(op, ": target shape ", shape_str(got), " does not match input ",
                   shape_str(shape_of(input)), " (expected ", shape_str(want), ")");
}

template <typename T>
const T* class_weight(const OptArray& weight, int64_t C, const char* op) {
  if (!weight) return nullptr;
  const T* p = data<T>(*weight, op, "weight");
  if (weight->ndim() != 1 || weight->shape(0) != C)
    fail<ValueError>(op, ": weight should have one entry per class (", C, ",), got shape ",
                     shape_str(shape_of(*weight)));
  return p;
}

// The loss array: `per_term` shaped under 'none', 0-D otherwise.
template <typename T>
py::array_t<T> loss_array(Reduction r, const Shape& per_term) {
  return empty<T>(r == Reduction::None ? per_term : Shape{});
}

// Checks the incoming gradient against the loss's shape and returns its data.
template <typename T>
const T* upstream(const py::array& g, Reduction r, const Shape& per_term, const char* op) {
  const T* p = data<T>(g, op, "grad_output");
  const Shape want = r == Reduction::None ? per_term : Shape{};
  if (r == Reduction::None ? shape_of(g) != want : g.size() != 1)
    fail<ValueError>(op, ": grad_output has shape ", shape_str(shape_of(g)), " but the loss has ",
                     shape_str(want));
  return p;
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

template <typename T>
const T* optional_data(const OptArray& a, const char* op, const char* name) {
  return a ? data<T>(*a, op, name) : nullptr;
}

// input (N, C) or (C,), target (N,) or () / (1,): the row count N.
int64_t margin_rows(const py::array& x, const py::array& target, const char* op) {
  check_ndim(x, {1, 2}, op, "input");
  const int64_t N = x.ndim() == 2 ? x.shape(0) : 1;
  if (target.ndim() > 1 || target.size() != N)
    fail<ValueError>(op, ": expected target of shape (", N, ",) for input ",
                     shape_str(shape_of(x)), ", got ", shape_str(shape_of(target)));
  if (x.ndim() == 2 && x.shape(1) == 0 && N > 0)
    fail<ValueError>(op, ": input ", shape_str(shape_of(x)), " has no classes");
  return N;
}

// What every class loss checks the same way: input (N, C, ...) of dtype T, the
// reduction, class weights, and (for class-index targets) the int64 targets.
template <typename T>
struct ClassArgs {
  const T* x;
  ClassDims d;
  Reduction r;
  const T* weight;
};

template <typename T>
ClassArgs<T> class_args(const py::array& x, const char* x_name, const OptArray& weight,
                        const std::string& reduction, const char* op) {
  const T* px = data<T>(x, op, x_name);
  const ClassDims d = class_dims(x, op);
  return {px, d, parse_reduction(reduction, op), class_weight<T>(weight, d.C, op)};
}

template <typename T>
ClassTargets<T> index_targets(const ClassArgs<T>& a, const py::array& target,
                              const py::array& x, int64_t ignore_index, double smoothing,
                              const char* op) {
  return {class_targets(target, x, op), a.weight, ignore_index, T(smoothing)};
}

// Class-probability targets: the input's shape and dtype.
template <typename T>
const T* probability_targets(const py::array& target, const py::array& x, const char* op) {
  const T* p = data<T>(target, op, "target");
  check_same_shape(target, x, op, "target (class probabilities)", "input");
  return p;
}

bool holds_probabilities(const py::array& target) { return target.dtype().kind() == 'f'; }

void def_class_losses(py::module_& m) {
  m.def(
      "cross_entropy_forward",
      [](const py::array& x, const py::array& target, const OptArray& weight,
         int64_t ignore_index, const std::string& reduction, double label_smoothing) {
        const char* op = "cross_entropy";
        return dispatch_float(x, op, "input", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const ClassArgs<T> a = class_args<T>(x, "input", weight, reduction, op);
          auto logp = empty<T>(shape_of(x));
          auto loss = loss_array<T>(a.r, per_position_shape(x));
          T *plp = logp.mutable_data(), *pl = loss.mutable_data();
          T z = static_cast<T>(a.d.N * a.d.S);
          if (holds_probabilities(target)) {
            const T* pp = probability_targets<T>(target, x, op);
            py::gil_scoped_release nogil;
            soft_cross_entropy_forward<T>(a.x, pp, a.weight, a.d, T(label_smoothing), a.r, plp,
                                          pl);
          } else {
            const auto t = index_targets(a, target, x, ignore_index, label_smoothing, op);
            py::gil_scoped_release nogil;
            z = cross_entropy_forward<T>(a.x, a.d, t, a.r, plp, pl);
          }
          return py::make_tuple(loss, logp, double(z));
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
         const std::string& reduction, double label_smoothing, bool target_grad) {
        const char* op = "cross_entropy_backward";
        return dispatch_float(logp, op, "log_probs", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const ClassArgs<T> a = class_args<T>(logp, "log_probs", weight, reduction, op);
          const T* pg = upstream<T>(dloss, a.r, per_position_shape(logp), op);
          auto dx = empty<T>(shape_of(logp));
          T* pdx = dx.mutable_data();
          if (holds_probabilities(target)) {
            const T* pp = probability_targets<T>(target, logp, op);
            auto [dt, pdt] = maybe_empty<T>(target_grad, shape_of(target));
            {
              py::gil_scoped_release nogil;
              soft_cross_entropy_backward<T>(pg, a.x, pp, a.weight, a.d, T(label_smoothing), a.r,
                                             pdx, pdt);
            }
            return py::make_tuple(dx, dt);
          }
          const auto t = index_targets(a, target, logp, ignore_index, label_smoothing, op);
          {
            py::gil_scoped_release nogil;
            cross_entropy_backward<T>(pg, a.x, a.d, t, a.r, T(total_weight), pdx);
          }
          return py::make_tuple(dx, py::none());
        });
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
        return dispatch_float(x, op, "input", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const ClassArgs<T> a = class_args<T>(x, "input", weight, reduction, op);
          const auto t = index_targets(a, target, x, ignore_index, 0.0, op);
          auto loss = loss_array<T>(a.r, per_position_shape(x));
          T* pl = loss.mutable_data();
          T z = 0;
          {
            py::gil_scoped_release nogil;
            z = nll_loss_forward<T>(a.x, a.d, t, a.r, pl);
          }
          return py::make_tuple(loss, double(z));
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
        return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const ClassArgs<T> a = class_args<T>(x, "input", weight, reduction, op);
          const T* pg = upstream<T>(dloss, a.r, per_position_shape(x), op);
          const auto t = index_targets(a, target, x, ignore_index, 0.0, op);
          auto dx = empty<T>(shape_of(x));
          T* pdx = dx.mutable_data();
          {
            py::gil_scoped_release nogil;
            nll_loss_backward<T>(pg, a.d, t, a.r, T(total_weight), pdx);
          }
          return dx;
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("total_weight"),
      py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean",
      "Gradient of nll_loss with respect to input (same shape as input).");
}

// What the elementwise losses check the same way: input and target of one shape
// and dtype, and the reduction.
template <typename T>
struct PairArgs {
  const T* x;
  const T* y;
  int64_t n;
  Reduction r;
};

template <typename T>
PairArgs<T> pair_args(const py::array& x, const py::array& y, const std::string& reduction,
                      const char* op) {
  const T* px = data<T>(x, op, "input");
  const T* py_ = data<T>(y, op, "target");
  check_same_shape(y, x, op, "target", "input");
  return {px, py_, static_cast<int64_t>(x.size()), parse_reduction(reduction, op)};
}

// The optional per-element weight of mse_loss / l1_loss: the input's shape.
template <typename T>
const T* element_weight(const OptArray& weight, const py::array& x, const char* op) {
  if (!weight) return nullptr;
  const T* p = data<T>(*weight, op, "weight");
  check_same_shape(*weight, x, op, "weight", "input");
  return p;
}

void def_regression(py::module_& m, const char* fwd, const char* bwd, Regression kind,
                    const char* formula) {
  m.def(
      fwd,
      [kind, fwd](const py::array& x, const py::array& y, const std::string& reduction,
                  const OptArray& weight) {
        return dispatch_float(x, fwd, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const PairArgs<T> a = pair_args<T>(x, y, reduction, fwd);
          const T* pw = element_weight<T>(weight, x, fwd);
          auto loss = loss_array<T>(a.r, shape_of(x));
          T* pl = loss.mutable_data();
          {
            py::gil_scoped_release nogil;
            regression_loss_forward<T>(kind, a.x, a.y, pw, a.n, a.r, pl);
          }
          return loss;
        });
      },
      py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(),
      (std::string(formula) + " per element, times weight when given; input, target and weight "
                              "of one shape and dtype. 'mean' divides by the number of elements "
                              "(by the sum of the weights when weighted). Returns the loss: 0-D, "
                              "or input's shape for reduction='none'.")
          .c_str());
  m.def(
      bwd,
      [kind, bwd](const py::array& dloss, const py::array& x, const py::array& y,
                  const std::string& reduction, const OptArray& weight, bool input_grad,
                  bool target_grad, bool weight_grad) {
        return dispatch_float(x, bwd, "input", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const PairArgs<T> a = pair_args<T>(x, y, reduction, bwd);
          const T* pw = element_weight<T>(weight, x, bwd);
          const T* pg = upstream<T>(dloss, a.r, shape_of(x), bwd);
          auto [dx, pdx] = maybe_empty<T>(input_grad, shape_of(x));
          auto [dy, pdy] = maybe_empty<T>(target_grad, shape_of(x));
          auto [dw, pdw] = maybe_empty<T>(weight_grad && pw, shape_of(x));
          {
            py::gil_scoped_release nogil;
            regression_loss_backward<T>(kind, pg, a.x, a.y, pw, a.n, a.r, pdx, pdy, pdw);
          }
          return py::make_tuple(dx, dy, dw);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), py::arg("input_grad") = true,
      py::arg("target_grad") = false, py::arg("weight_grad") = false,
      "Returns (grad_input, grad_target, grad_weight), each None when not requested (grad_weight "
      "also None without a weight).");
}

// binary_cross_entropy_with_logits' weight and pos_weight, broadcast to the input's
// shape; the arrays own the broadcast copies the pointers read.
template <typename T>
struct BceWeights {
  OptArray weight, pos_weight;
  const T* w = nullptr;
  const T* pw = nullptr;
};

template <typename T>
BceWeights<T> bce_weights(const OptArray& weight, const OptArray& pos_weight, const py::array& x,
                          const char* op) {
  BceWeights<T> b{broadcast_to(weight, x, op, "weight"),
                  broadcast_to(pos_weight, x, op, "pos_weight")};
  b.w = optional_data<T>(b.weight, op, "weight");
  b.pw = optional_data<T>(b.pos_weight, op, "pos_weight");
  return b;
}

void def_bce(py::module_& m) {
  m.def(
      "binary_cross_entropy_with_logits_forward",
      [](const py::array& x, const py::array& y, const OptArray& weight,
         const OptArray& pos_weight, const std::string& reduction) {
        const char* op = "binary_cross_entropy_with_logits";
        return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const PairArgs<T> a = pair_args<T>(x, y, reduction, op);
          const BceWeights<T> w = bce_weights<T>(weight, pos_weight, x, op);
          auto loss = loss_array<T>(a.r, shape_of(x));
          T* pl = loss.mutable_data();
          {
            py::gil_scoped_release nogil;
            bce_with_logits_forward<T>(a.x, a.y, w.w, w.pw, a.n, a.r, pl);
          }
          return loss;
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
        return dispatch_float(x, op, "input", [&](auto tag) -> py::tuple {
          using T = decltype(tag);
          const PairArgs<T> a = pair_args<T>(x, y, reduction, op);
          const BceWeights<T> w = bce_weights<T>(weight, pos_weight, x, op);
          const T* pg = upstream<T>(dloss, a.r, shape_of(x), op);
          auto [dx, pdx] = maybe_empty<T>(input_grad, shape_of(x));
          auto [dy, pdy] = maybe_empty<T>(target_grad, shape_of(x));
          {
            py::gil_scoped_release nogil;
            bce_with_logits_backward<T>(pg, a.x, a.y, w.w, w.pw, a.n, a.r, pdx, pdy);
          }
          return py::make_tuple(dx, dy);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      py::arg("input_grad") = true, py::arg("target_grad") = false,
      "Returns (grad_input, grad_target), each None when not requested.");
}

// multi_margin_loss' arguments: input (N, C) or (C,), int64 target (N,) or (), weight (C,).
template <typename T>
struct MarginArgs {
  const T* x;
  const int64_t* target;
  const T* weight;
  int64_t N, C;
  Reduction r;
};

template <typename T>
MarginArgs<T> margin_args(const py::array& x, const py::array& target, const OptArray& weight,
                          const std::string& reduction, const char* op) {
  const T* px = data<T>(x, op, "input");
  const int64_t* pt = data<int64_t>(target, op, "target");
  const int64_t N = margin_rows(x, target, op), C = x.shape(x.ndim() - 1);
  return {px, pt, class_weight<T>(weight, C, op), N, C, parse_reduction(reduction, op)};
}

void def_multi_margin(py::module_& m) {
  m.def(
      "multi_margin_loss_forward",
      [](const py::array& x, const py::array& target, int p, double margin,
         const OptArray& weight, const std::string& reduction) {
        const char* op = "multi_margin_loss";
        return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const MarginArgs<T> a = margin_args<T>(x, target, weight, reduction, op);
          auto loss = loss_array<T>(a.r, shape_of(target));
          T* pl = loss.mutable_data();
          {
            py::gil_scoped_release nogil;
            multi_margin_forward<T>(a.x, a.target, a.weight, a.N, a.C, p, T(margin), a.r, pl);
          }
          return loss;
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
        return dispatch_float(x, op, "input", [&](auto tag) -> py::array {
          using T = decltype(tag);
          const MarginArgs<T> a = margin_args<T>(x, target, weight, reduction, op);
          const T* pg = upstream<T>(dloss, a.r, shape_of(target), op);
          auto dx = empty<T>(shape_of(x));
          T* pdx = dx.mutable_data();
          {
            py::gil_scoped_release nogil;
            multi_margin_backward<T>(pg, a.x, a.target, a.weight, a.N, a.C, p, T(margin), a.r, pdx);
          }
          return dx;
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
  def_bce(m);
  def_multi_margin(m);
}

}  // namespace kiln::bind
