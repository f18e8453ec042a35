// Batch and group normalization kernels on NumPy arrays, exposed as
// kiln.kernels.batch_norm_* and kiln.kernels.group_norm_*.
#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/outputs.h"
#include "cpu/norm.h"

namespace kiln::bind {
namespace {

// A per-channel array of shape (C,) and dtype T, or null when absent.
template <typename T>
const T* channel_data(const OptArray& a, const char* op, const char* name, const Shape& input) {
  if (!a) return nullptr;
  const T* p = data<T>(*a, op, name);
  check_channel_param(op, name, shape_of(*a), input);
  return p;
}

py::tuple batch_norm_forward_py(const py::array& input, OptArray running_mean,
                                OptArray running_var, const OptArray& weight,
                                const OptArray& bias, bool training, double momentum,
                                double eps) {
  const char* op = "batch_norm";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Shape shape = shape_of(input);
    const BatchNormSizes sz = batch_norm_sizes(op, shape);
    if (running_mean.has_value() != running_var.has_value())
      fail(op, ": running_mean and running_var must either both be None or neither be None");
    check_batch_norm_args(op, shape, training, running_mean.has_value(), eps);
    const T* w = channel_data<T>(weight, op, "weight", shape);
    const T* b = channel_data<T>(bias, op, "bias", shape);
    T* rm = const_cast<T*>(channel_data<T>(running_mean, op, "running_mean", shape));
    T* rv = const_cast<T*>(channel_data<T>(running_var, op, "running_var", shape));
    if (training && rm) {  // updated in place
      mutable_data<T>(*running_mean, op, "running_mean");
      mutable_data<T>(*running_var, op, "running_var");
    }
    auto y = empty<T>(shape);
    auto save_mean = empty<T>({sz.c});
    auto save_invstd = empty<T>({sz.c});
    T* yp = y.mutable_data();
    T* mp = save_mean.mutable_data();
    T* ip = save_invstd.mutable_data();
    {
      py::gil_scoped_release nogil;
      batch_norm_forward(x, yp, sz, w, b, rm, rv, training, momentum, eps, mp, ip);
    }
    return py::make_tuple(y, save_mean, save_invstd);
  });
}

py::tuple batch_norm_backward_py(const py::array& grad_output, const py::array& input,
                                 const OptArray& weight, const py::array& save_mean,
                                 const py::array& save_invstd, bool training) {
  const char* op = "batch_norm_backward";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const T* dy = data<T>(grad_output, op, "grad_output");
    const Shape shape = shape_of(input);
    const BatchNormSizes sz = batch_norm_sizes(op, shape);
    if (shape_of(grad_output) != shape)
      fail(op, ": grad_output ", shape_str(shape_of(grad_output)), " must have the shape of input ",
           shape_str(shape));
    const T* w = channel_data<T>(weight, op, "weight", shape);
    const T* mean = channel_data<T>(save_mean, op, "save_mean", shape);
    const T* invstd = channel_data<T>(save_invstd, op, "save_invstd", shape);
    auto dx = empty<T>(shape);
    auto dw = empty<T>({sz.c});
    auto db = empty<T>({sz.c});
    T* dxp = dx.mutable_data();
    T* dwp = dw.mutable_data();
    T* dbp = db.mutable_data();
    {
      py::gil_scoped_release nogil;
      batch_norm_backward(dy, x, sz, w, mean, invstd, training, dxp, dwp, dbp);
    }
    return py::make_tuple(dx, dw, db);
  });
}

// mean or rstd from group_norm_forward: shape (N, G).
template <typename T>
const T* group_stat_data(const py::array& a, const char* op, const char* name,
                         const GroupNormSizes& sz) {
  const T* p = data<T>(a, op, name);
  if (shape_of(a) != Shape{sz.n, sz.groups})
    fail(op, ": expected ", name, " of shape ", shape_str({sz.n, sz.groups}), ", got ",
         shape_str(shape_of(a)));
  return p;
}

py::tuple group_norm_forward_py(const py::array& input, int64_t num_groups,
                                const OptArray& weight, const OptArray& bias, double eps) {
  const char* op = "group_norm";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Shape shape = shape_of(input);
    const GroupNormSizes sz = group_norm_sizes(op, shape, num_groups);
    if (!(eps > 0)) fail(op, ": eps must be positive, got ", eps);
    const T* w = channel_data<T>(weight, op, "weight", shape);
    const T* b = channel_data<T>(bias, op, "bias", shape);
    auto y = empty<T>(shape);
    auto mean = empty<T>({sz.n, sz.groups});
    auto rstd = empty<T>({sz.n, sz.groups});
    T* yp = y.mutable_data();
    T* mp = mean.mutable_data();
    T* rp = rstd.mutable_data();
    {
      py::gil_scoped_release nogil;
      group_norm_forward(x, yp, sz, w, b, eps, mp, rp);
    }
    return py::make_tuple(y, mean, rstd);
  });
}

py::tuple group_norm_backward_py(const py::array& grad_output, const py::array& input,
                                 const OptArray& weight, const py::array& mean,
                                 const py::array& rstd, int64_t num_groups, bool input_grad,
                                 bool weight_grad, bool bias_grad) {
  const char* op = "group_norm_backward";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const T* dy = data<T>(grad_output, op, "grad_output");
    const Shape shape = shape_of(input);
    const GroupNormSizes sz = group_norm_sizes(op, shape, num_groups);
    if (shape_of(grad_output) != shape)
      fail(op, ": grad_output ", shape_str(shape_of(grad_output)), " must have the shape of input ",
           shape_str(shape));
    const T* w = channel_data<T>(weight, op, "weight", shape);
    const T* mp = group_stat_data<T>(mean, op, "mean", sz);
    const T* rp = group_stat_data<T>(rstd, op, "rstd", sz);
    auto [dx, dxp] = maybe_empty<T>(input_grad, shape);
    auto [dw, dwp] = maybe_empty<T>(weight_grad, {sz.c});
    auto [db, dbp] = maybe_empty<T>(bias_grad, {sz.c});
    {
      py::gil_scoped_release nogil;
      group_norm_backward(dy, x, sz, w, mp, rp, dxp, dwp, dbp);
    }
    return py::make_tuple(dx, dw, db);
  });
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward_py, py::arg("input"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        R"doc(Batch normalization: returns (output, save_mean, save_invstd).

input (N, C, *) float32 or float64 (e.g. (N, C), (N, C, L), (N, C, H, W));
running_mean, running_var, weight, bias: (C,) of the same dtype, or None
(running statistics are required when training=False). training=True
normalizes with the batch mean and biased variance over N and the trailing
dimensions and updates running_mean / running_var IN PLACE:
r = (1 - momentum) * r + momentum * batch (unbiased variance for running_var).
training=False normalizes with the running statistics.
output has input's shape; save_mean and save_invstd (C,) are the mean and
1/sqrt(var + eps) used, to hand to batch_norm_backward.)doc");
  m.def("batch_norm_backward", &batch_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("save_mean"), py::arg("save_invstd"),
        py::arg("training") = false,
        R"doc(Gradients of batch_norm: returns (grad_input, grad_weight, grad_bias).

grad_output and input (N, C, *); weight (C,) or None; save_mean, save_invstd
(C,) from batch_norm_forward; training as given to the forward (True: the
statistics depend on the input, giving the full batch-norm gradient; False:
grad_input = grad_output * weight * save_invstd). grad_weight = sum of
grad_output * (input - mean) * invstd and grad_bias = sum of grad_output over
all but the channel dimension, each (C,).)doc");
  m.def("group_norm_forward", &group_norm_forward_py, py::arg("input"), py::arg("num_groups"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
        R"doc(Group normalization: returns (output, mean, rstd).

input (N, C, *) float32 or float64, C divisible by num_groups; weight, bias
(C,) of the same dtype, or None (1 and 0); eps > 0. Each (n, g) group of C/G
channels is normalized over its C/G * prod(*) values with its mean and biased
variance: output = (input - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps).
output has input's shape; mean and rstd (N, G) go to group_norm_backward.)doc");
  m.def("group_norm_backward", &group_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("num_groups"),
        py::arg("input_grad") = true, py::arg("weight_grad") = true, py::arg("bias_grad") = true,
        R"doc(Gradients of group_norm: returns (grad_input, grad_weight, grad_bias), each
None when not requested.

grad_output and input (N, C, *); weight (C,) or None; mean, rstd (N, G) from
group_norm_forward with the same num_groups. grad_input has input's shape;
grad_weight = sum of grad_output * (input - mean) * rstd and grad_bias = sum of
grad_output over all but the channel dimension, each (C,).)doc");
}

}  // namespace kiln::bind
