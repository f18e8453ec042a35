// kiln._C_cuda losses: the twins of bindings/loss.cpp on CUDA arrays (float32 or
// float64, int64 class indices), with the same names, arguments, results and shape
// checks (bindings/loss_checks.h). reduction is 'mean', 'sum' or 'none'; the loss
// is a 0-D DeviceArray unless 'none'.
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/loss_checks.h"
#include "cuda/loss.h"

namespace kiln::cuda::bind {
namespace {

namespace kc = kiln::cuda;
namespace ls = kiln::bind::loss;
using Array = ArrayPtr;
using OptView = std::optional<DeviceView>;

std::optional<Shape> shape_or_none(const OptView& v) {
  return v ? std::optional<Shape>(v->shape) : std::nullopt;
}

void check_indices(const DeviceView& t, const DeviceView& input, const char* op) {
  check_dtype(t, Dtype::Int64, op, "target");
  check_same_device(t, input, op);
}

bool holds_probabilities(const DeviceView& target) {
  return target.dtype == Dtype::Float32 || target.dtype == Dtype::Float64;
}

struct ClassArgs {
  ClassDims d;
  Reduction r;
};

ClassArgs class_args(const DeviceView& x, const OptView& weight, const std::string& reduction,
                     const char* op) {
  const ClassDims d = ls::class_dims(x.shape, op);
  const Reduction r = parse_reduction(reduction, op);
  ls::check_class_weight(shape_or_none(weight), d.C, op);
  return {d, r};
}

void def_class_losses(py::module_& m) {
  m.def(
      "cross_entropy_forward",
      [](const py::object& x_obj, const py::object& t_obj, const py::object& w_obj,
         int64_t ignore_index, const std::string& reduction, double label_smoothing) {
        const char* op = "cross_entropy";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView target = view_of(t_obj, op, "target");
        py::tuple result;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const ClassArgs a = class_args(x, w, reduction, op);
          const Array loss = output(ls::loss_shape(a.r, ls::per_position_shape(x.shape)), x);
          const Array logp = output(x.shape, x);
          double total = 0;
          if (holds_probabilities(target)) {
            check_same_shape(target, x, op, "target (class probabilities)", "input");
            check_like(target, x, op, "target");
            launch_on(x.device, [&] {
              kc::soft_cross_entropy_forward(x.ptr<T>(), target.ptr<T>(), ptr_or_null<T>(w), a.d,
                                         T(label_smoothing), a.r, logp->ptr<T>(),
                                         loss->ptr<T>());
            });
            total = double(T(a.d.N * a.d.S));
          } else {
            ls::check_class_targets(target.shape, x.shape, op);
            check_indices(target, x, op);
            launch_on(x.device, [&] {
              const ClassTargets<T> targets{target.ptr<int64_t>(), ptr_or_null<T>(w), ignore_index,
                                            T(label_smoothing)};
              total = double(kc::cross_entropy_forward(x.ptr<T>(), a.d, targets, a.r,
                                                     logp->ptr<T>(), loss->ptr<T>()));
            });
          }
          result = py::make_tuple(loss, logp, total);
        });
        return result;
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      py::arg("label_smoothing") = 0.0, twin_doc("cross_entropy_forward").c_str());
  m.def(
      "cross_entropy_backward",
      [](const py::object& g_obj, const py::object& lp_obj, const py::object& t_obj,
         double total_weight, const py::object& w_obj, int64_t ignore_index,
         const std::string& reduction, double label_smoothing, bool target_grad) {
        const char* op = "cross_entropy_backward";
        const DeviceView logp = view_of(lp_obj, op, "log_probs");
        const DeviceView g = view_of(g_obj, op, "grad_output");
        const DeviceView target = view_of(t_obj, op, "target");
        py::tuple result;
        dispatch_float(logp, op, "log_probs", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, logp, op, "weight");
          const ClassArgs a = class_args(logp, w, reduction, op);
          ls::check_upstream(g.shape, a.r, ls::per_position_shape(logp.shape), op);
          check_like(g, logp, op, "grad_output");
          const Array dx = output(logp.shape, logp);
          if (holds_probabilities(target)) {
            check_same_shape(target, logp, op, "target (class probabilities)", "input");
            check_like(target, logp, op, "target");
            const Array dprobs = output(target.shape, logp, target_grad);
            launch_on(logp.device, [&] {
              kc::soft_cross_entropy_backward(g.ptr<T>(), logp.ptr<T>(), target.ptr<T>(),
                                          ptr_or_null<T>(w), a.d, T(label_smoothing), a.r,
                                          dx->ptr<T>(), ptr_or_null<T>(dprobs));
            });
            result = py::make_tuple(dx, or_none(dprobs));
            return;
          }
          ls::check_class_targets(target.shape, logp.shape, op);
          check_indices(target, logp, op);
          launch_on(logp.device, [&] {
            const ClassTargets<T> targets{target.ptr<int64_t>(), ptr_or_null<T>(w), ignore_index,
                                          T(label_smoothing)};
            kc::cross_entropy_backward(g.ptr<T>(), logp.ptr<T>(), a.d, targets, a.r,
                                       T(total_weight), dx->ptr<T>());
          });
          result = py::make_tuple(dx, py::none());
        });
        return result;
      },
      py::arg("grad_output"), py::arg("log_probs"), py::arg("target"), py::arg("total_weight"),
      py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0,
      py::arg("target_grad") = false, twin_doc("cross_entropy_backward").c_str());
  m.def(
      "nll_loss_forward",
      [](const py::object& x_obj, const py::object& t_obj, const py::object& w_obj,
         int64_t ignore_index, const std::string& reduction) {
        const char* op = "nll_loss";
        const DeviceView x = view_of(x_obj, op, "input");
        py::tuple result;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const ClassArgs a = class_args(x, w, reduction, op);
          const DeviceView t = view_of(t_obj, op, "target");
          ls::check_class_targets(t.shape, x.shape, op);
          check_indices(t, x, op);
          const Array loss = output(ls::loss_shape(a.r, ls::per_position_shape(x.shape)), x);
          double total = 0;
          launch_on(x.device, [&] {
            const ClassTargets<T> targets{t.ptr<int64_t>(), ptr_or_null<T>(w), ignore_index, 0};
            total = double(kc::nll_loss_forward(x.ptr<T>(), a.d, targets, a.r, loss->ptr<T>()));
          });
          result = py::make_tuple(loss, total);
        });
        return result;
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
      twin_doc("nll_loss_forward").c_str());
  m.def(
      "nll_loss_backward",
      [](const py::object& g_obj, const py::object& x_obj, const py::object& t_obj,
         double total_weight, const py::object& w_obj, int64_t ignore_index,
         const std::string& reduction) {
        const char* op = "nll_loss_backward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView g = view_of(g_obj, op, "grad_output");
        Array dx;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const ClassArgs a = class_args(x, w, reduction, op);
          ls::check_upstream(g.shape, a.r, ls::per_position_shape(x.shape), op);
          check_like(g, x, op, "grad_output");
          const DeviceView t = view_of(t_obj, op, "target");
          ls::check_class_targets(t.shape, x.shape, op);
          check_indices(t, x, op);
          dx = output(x.shape, x);
          launch_on(x.device, [&] {
            const ClassTargets<T> targets{t.ptr<int64_t>(), ptr_or_null<T>(w), ignore_index, 0};
            kc::nll_loss_backward(g.ptr<T>(), a.d, targets, a.r, T(total_weight), dx->ptr<T>());
          });
        });
        return dx;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("total_weight"),
      py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
      py::arg("reduction") = "mean", twin_doc("nll_loss_backward").c_str());
}

// What the elementwise losses check the same way: target (and weight) of input's shape.
Reduction pair_args(const DeviceView& x, const DeviceView& y, const OptView& weight,
                    const std::string& reduction, const char* op) {
  check_same_shape(y, x, op, "target", "input");
  if (weight) check_same_shape(*weight, x, op, "weight", "input");
  check_like(y, x, op, "target");
  return parse_reduction(reduction, op);
}

void def_regression(py::module_& m, const char* fwd, const char* bwd, Regression kind,
                    const char* param) {
  auto forward = [kind, fwd](const py::object& x_obj, const py::object& y_obj,
                             const std::string& reduction, const py::object& w_obj, double p) {
    const DeviceView x = view_of(x_obj, fwd, "input");
    const DeviceView y = view_of(y_obj, fwd, "target");
    Array loss;
    dispatch_float(x, fwd, "input", [&](auto zero) {
      using T = decltype(zero);
      const OptView w = optional_operand(w_obj, x, fwd, "weight");
      const Reduction r = pair_args(x, y, w, reduction, fwd);
      loss = output(ls::loss_shape(r, x.shape), x);
      launch_on(x.device, [&] {
        kc::regression_loss_forward(kind, x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w), x.numel(), r,
                                loss->ptr<T>(), T(p));
      });
    });
    return loss;
  };
  auto backward = [kind, bwd](const py::object& g_obj, const py::object& x_obj,
                              const py::object& y_obj, const std::string& reduction,
                              const py::object& w_obj, bool input_grad, bool target_grad,
                              bool weight_grad, double p) {
    const DeviceView x = view_of(x_obj, bwd, "input");
    const DeviceView y = view_of(y_obj, bwd, "target");
    const DeviceView g = view_of(g_obj, bwd, "grad_output");
    py::tuple result;
    dispatch_float(x, bwd, "input", [&](auto zero) {
      using T = decltype(zero);
      const OptView w = optional_operand(w_obj, x, bwd, "weight");
      const Reduction r = pair_args(x, y, w, reduction, bwd);
      ls::check_upstream(g.shape, r, x.shape, bwd);
      check_like(g, x, bwd, "grad_output");
      const Array dx = output(x.shape, x, input_grad), dy = output(x.shape, x, target_grad);
      const Array dw = output(x.shape, x, weight_grad && w);
      launch_on(x.device, [&] {
        kc::regression_loss_backward(kind, g.ptr<T>(), x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w),
                                 x.numel(), r, ptr_or_null<T>(dx), ptr_or_null<T>(dy),
                                 ptr_or_null<T>(dw), T(p));
      });
      result = py::make_tuple(or_none(dx), or_none(dy), or_none(dw));
    });
    return result;
  };
  if (param) {  // smooth_l1_loss' beta, huber_loss' delta: after the weight
    m.def(fwd, forward, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
          py::arg("weight") = py::none(), py::arg(param) = 1.0, twin_doc(fwd).c_str());
    m.def(bwd, backward, py::arg("grad_output"), py::arg("input"), py::arg("target"),
          py::arg("reduction") = "mean", py::arg("weight") = py::none(),
          py::arg("input_grad") = true, py::arg("target_grad") = false,
          py::arg("weight_grad") = false, py::arg(param) = 1.0, twin_doc(bwd).c_str());
    return;
  }
  m.def(
      fwd,
      [forward](const py::object& x, const py::object& y, const std::string& reduction,
                const py::object& w) { return forward(x, y, reduction, w, 0.0); },
      py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), twin_doc(fwd).c_str());
  m.def(
      bwd,
      [backward](const py::object& g, const py::object& x, const py::object& y,
                 const std::string& reduction, const py::object& w, bool input_grad,
                 bool target_grad, bool weight_grad) {
        return backward(g, x, y, reduction, w, input_grad, target_grad, weight_grad, 0.0);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
      py::arg("weight") = py::none(), py::arg("input_grad") = true,
      py::arg("target_grad") = false, py::arg("weight_grad") = false, twin_doc(bwd).c_str());
}

// binary_cross_entropy(_with_logits)' weight / pos_weight broadcast to the input's
// shape (NumPy rules, through CuPy), contiguous; None when absent.
py::object broadcast_to(const py::object& a, const DeviceView& like, const char* op,
                        const char* name) {
  if (a.is_none()) return a;
  const py::module_ cp = py::module_::import("cupy");
  try {
    return cp.attr("ascontiguousarray")(
        cp.attr("broadcast_to")(cp.attr("asarray")(a), py::tuple(py::cast(like.shape))));
  } catch (const py::error_already_set&) {
    fail<ValueError>(op, ": ", name, " of shape ",
                     shape_str(py::cast<Shape>(a.attr("shape"))),
                     " cannot be broadcast to the input shape ", shape_str(like.shape));
  }
}

void def_bce(py::module_& m) {
  m.def(
      "binary_cross_entropy_with_logits_forward",
      [](const py::object& x_obj, const py::object& y_obj, const py::object& weight,
         const py::object& pos_weight, const std::string& reduction) {
        const char* op = "binary_cross_entropy_with_logits";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView y = view_of(y_obj, op, "target");
        Array loss;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const Reduction r = pair_args(x, y, std::nullopt, reduction, op);
          const py::object w_obj = broadcast_to(weight, x, op, "weight");
          const py::object pw_obj = broadcast_to(pos_weight, x, op, "pos_weight");
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const OptView pw = optional_operand(pw_obj, x, op, "pos_weight");
          loss = output(ls::loss_shape(r, x.shape), x);
          launch_on(x.device, [&] {
            kc::bce_with_logits_forward(x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w),
                                    ptr_or_null<T>(pw), x.numel(), r, loss->ptr<T>());
          });
        });
        return loss;
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      twin_doc("binary_cross_entropy_with_logits_forward").c_str());
  m.def(
      "binary_cross_entropy_with_logits_backward",
      [](const py::object& g_obj, const py::object& x_obj, const py::object& y_obj,
         const py::object& weight, const py::object& pos_weight, const std::string& reduction,
         bool input_grad, bool target_grad) {
        const char* op = "binary_cross_entropy_with_logits_backward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView y = view_of(y_obj, op, "target");
        const DeviceView g = view_of(g_obj, op, "grad_output");
        py::tuple result;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const Reduction r = pair_args(x, y, std::nullopt, reduction, op);
          const py::object w_obj = broadcast_to(weight, x, op, "weight");
          const py::object pw_obj = broadcast_to(pos_weight, x, op, "pos_weight");
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const OptView pw = optional_operand(pw_obj, x, op, "pos_weight");
          ls::check_upstream(g.shape, r, x.shape, op);
          check_like(g, x, op, "grad_output");
          const Array dx = output(x.shape, x, input_grad), dy = output(x.shape, x, target_grad);
          launch_on(x.device, [&] {
            kc::bce_with_logits_backward(g.ptr<T>(), x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w),
                                     ptr_or_null<T>(pw), x.numel(), r, ptr_or_null<T>(dx),
                                     ptr_or_null<T>(dy));
          });
          result = py::make_tuple(or_none(dx), or_none(dy));
        });
        return result;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("pos_weight") = py::none(), py::arg("reduction") = "mean",
      py::arg("input_grad") = true, py::arg("target_grad") = false,
      twin_doc("binary_cross_entropy_with_logits_backward").c_str());
  m.def(
      "binary_cross_entropy_forward",
      [](const py::object& x_obj, const py::object& y_obj, const py::object& weight,
         const std::string& reduction) {
        const char* op = "binary_cross_entropy";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView y = view_of(y_obj, op, "target");
        Array loss;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const Reduction r = pair_args(x, y, std::nullopt, reduction, op);
          const py::object w_obj = broadcast_to(weight, x, op, "weight");
          const OptView w = optional_operand(w_obj, x, op, "weight");
          loss = output(ls::loss_shape(r, x.shape), x);
          launch_on(x.device, [&] {
            kc::bce_forward(x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w), x.numel(), r,
                            loss->ptr<T>());
          });
        });
        return loss;
      },
      py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("reduction") = "mean", twin_doc("binary_cross_entropy_forward").c_str());
  m.def(
      "binary_cross_entropy_backward",
      [](const py::object& g_obj, const py::object& x_obj, const py::object& y_obj,
         const py::object& weight, const std::string& reduction, bool input_grad,
         bool target_grad) {
        const char* op = "binary_cross_entropy_backward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView y = view_of(y_obj, op, "target");
        const DeviceView g = view_of(g_obj, op, "grad_output");
        py::tuple result;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const Reduction r = pair_args(x, y, std::nullopt, reduction, op);
          const py::object w_obj = broadcast_to(weight, x, op, "weight");
          const OptView w = optional_operand(w_obj, x, op, "weight");
          ls::check_upstream(g.shape, r, x.shape, op);
          check_like(g, x, op, "grad_output");
          const Array dx = output(x.shape, x, input_grad), dy = output(x.shape, x, target_grad);
          launch_on(x.device, [&] {
            kc::bce_backward(g.ptr<T>(), x.ptr<T>(), y.ptr<T>(), ptr_or_null<T>(w), x.numel(), r,
                         ptr_or_null<T>(dx), ptr_or_null<T>(dy));
          });
          result = py::make_tuple(or_none(dx), or_none(dy));
        });
        return result;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
      py::arg("reduction") = "mean", py::arg("input_grad") = true,
      py::arg("target_grad") = false, twin_doc("binary_cross_entropy_backward").c_str());
}

struct MarginArgs {
  int64_t N, C;
  Reduction r;
};

MarginArgs margin_args(const DeviceView& x, const DeviceView& target, const OptView& weight,
                       const std::string& reduction, const char* op) {
  const int64_t N = ls::margin_rows(x.shape, target.shape, op);
  const int64_t C = x.shape.back();
  ls::check_class_weight(shape_or_none(weight), C, op);
  check_indices(target, x, op);
  return {N, C, parse_reduction(reduction, op)};
}

void def_multi_margin(py::module_& m) {
  m.def(
      "multi_margin_loss_forward",
      [](const py::object& x_obj, const py::object& t_obj, int p, double margin,
         const py::object& w_obj, const std::string& reduction) {
        const char* op = "multi_margin_loss";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView t = view_of(t_obj, op, "target");
        Array loss;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const MarginArgs a = margin_args(x, t, w, reduction, op);
          loss = output(ls::loss_shape(a.r, t.shape), x);
          launch_on(x.device, [&] {
            kc::multi_margin_forward(x.ptr<T>(), t.ptr<int64_t>(), ptr_or_null<T>(w), a.N, a.C, p,
                                 T(margin), a.r, loss->ptr<T>());
          });
        });
        return loss;
      },
      py::arg("input"), py::arg("target"), py::arg("p") = 1, py::arg("margin") = 1.0,
      py::arg("weight") = py::none(), py::arg("reduction") = "mean",
      twin_doc("multi_margin_loss_forward").c_str());
  m.def(
      "multi_margin_loss_backward",
      [](const py::object& g_obj, const py::object& x_obj, const py::object& t_obj, int p,
         double margin, const py::object& w_obj, const std::string& reduction) {
        const char* op = "multi_margin_loss_backward";
        const DeviceView x = view_of(x_obj, op, "input");
        const DeviceView t = view_of(t_obj, op, "target");
        const DeviceView g = view_of(g_obj, op, "grad_output");
        Array dx;
        dispatch_float(x, op, "input", [&](auto zero) {
          using T = decltype(zero);
          const OptView w = optional_operand(w_obj, x, op, "weight");
          const MarginArgs a = margin_args(x, t, w, reduction, op);
          ls::check_upstream(g.shape, a.r, t.shape, op);
          check_like(g, x, op, "grad_output");
          dx = output(x.shape, x);
          launch_on(x.device, [&] {
            kc::multi_margin_backward(g.ptr<T>(), x.ptr<T>(), t.ptr<int64_t>(), ptr_or_null<T>(w),
                                  a.N, a.C, p, T(margin), a.r, dx->ptr<T>());
          });
        });
        return dx;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("target"), py::arg("p") = 1,
      py::arg("margin") = 1.0, py::arg("weight") = py::none(), py::arg("reduction") = "mean",
      twin_doc("multi_margin_loss_backward").c_str());
}

}  // namespace

void bind_loss(py::module_& m) {
  def_class_losses(m);
  def_regression(m, "mse_loss_forward", "mse_loss_backward", Regression::MSE, nullptr);
  def_regression(m, "l1_loss_forward", "l1_loss_backward", Regression::L1, nullptr);
  def_regression(m, "smooth_l1_loss_forward", "smooth_l1_loss_backward", Regression::SmoothL1,
                 "beta");
  def_regression(m, "huber_loss_forward", "huber_loss_backward", Regression::Huber, "delta");
  def_bce(m);
  def_multi_margin(m);
}

}  // namespace kiln::cuda::bind
