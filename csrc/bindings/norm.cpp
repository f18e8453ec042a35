// Batch, group, layer and local response normalization kernels on NumPy arrays,
// exposed as kiln.kernels.batch_norm_*, group_norm_*, layer_norm_* and
// local_response_norm_*.
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "bindings/norm_args.h"
#include "cpu/norm.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::opt_inout;
using marshal::out;

// A per-channel array, when present, has shape (C,).
void check_channel(const OptArray& a, const char* op, const char* name, const Shape& input) {
  if (a) check_channel_param(op, name, shape_of(*a), input);
}

// The checks of batch_norm's forward (and the fused batch_norm_relu's); returns (N, C, S).
BatchNormSizes check_batch_norm_forward(const char* op, const Shape& shape,
                                        const OptArray& running_mean,
                                        const OptArray& running_var, const OptArray& weight,
                                        const OptArray& bias, bool training, double eps) {
  const BatchNormSizes sz = batch_norm_sizes(op, shape);
  check_batch_norm_call(op, shape, training, running_mean.has_value(), running_var.has_value(),
                        eps);
  check_channel(weight, op, "weight", shape);
  check_channel(bias, op, "bias", shape);
  check_channel(running_mean, op, "running_mean", shape);
  check_channel(running_var, op, "running_var", shape);
  return sz;
}

// The checks of batch_norm's backward (and the fused one's); returns (N, C, S).
BatchNormSizes check_batch_norm_backward(const char* op, const Shape& shape,
                                         const py::array& grad_output, const OptArray& weight,
                                         const py::array& save_mean,
                                         const py::array& save_invstd) {
  const BatchNormSizes sz = batch_norm_sizes(op, shape);
  check_grad_output(shape_of(grad_output), shape, op);
  check_channel(weight, op, "weight", shape);
  check_channel_param(op, "save_mean", shape_of(save_mean), shape);
  check_channel_param(op, "save_invstd", shape_of(save_invstd), shape);
  return sz;
}

py::object batch_norm_forward_py(const py::array& input, const OptArray& running_mean,
                                 const OptArray& running_var, const OptArray& weight,
                                 const OptArray& bias, bool training, double momentum,
                                 double eps) {
  const char* op = "batch_norm";
  const Shape shape = shape_of(input);
  const BatchNormSizes sz = check_batch_norm_forward(op, shape, running_mean, running_var,
                                                     weight, bias, training, eps);
  return marshal::call<float, double>(
      op, in(input, "input"), opt(weight, "weight"), opt(bias, "bias"),
      opt_inout(running_mean, "running_mean", training),
      opt_inout(running_var, "running_var", training), out(shape), out({sz.c}), out({sz.c}),
      [&](auto* x, auto* w, auto* b, auto* rm, auto* rv, auto* y, auto* mean, auto* invstd) {
        batch_norm_forward(x, y, sz, w, b, rm, rv, training, momentum, eps, mean, invstd);
      });
}

py::object batch_norm_backward_py(const py::array& grad_output, const py::array& input,
                                  const OptArray& weight, const py::array& save_mean,
                                  const py::array& save_invstd, bool training) {
  const char* op = "batch_norm_backward";
  const Shape shape = shape_of(input);
  const BatchNormSizes sz =
      check_batch_norm_backward(op, shape, grad_output, weight, save_mean, save_invstd);
  return marshal::call<float, double>(
      op, in(input, "input"), in(grad_output, "grad_output"), opt(weight, "weight"),
      in(save_mean, "save_mean"), in(save_invstd, "save_invstd"), out(shape), out({sz.c}),
      out({sz.c}),
      [&](auto* x, auto* dy, auto* w, auto* mean, auto* invstd, auto* dx, auto* dw, auto* db) {
        batch_norm_backward(dy, x, sz, w, mean, invstd, training, dx, dw, db);
      });
}

// A residual or the fused output, when present, has input's shape.
void check_like_input(const OptArray& a, const char* op, const char* name, const Shape& input) {
  if (a) check_input_shaped(shape_of(*a), op, name, input);
}

py::object batch_norm_relu_forward_py(const py::array& input, const OptArray& residual,
                                      const OptArray& running_mean,
                                      const OptArray& running_var, const OptArray& weight,
                                      const OptArray& bias, bool training, double momentum,
                                      double eps) {
  const char* op = "batch_norm_relu";
  const Shape shape = shape_of(input);
  const BatchNormSizes sz = check_batch_norm_forward(op, shape, running_mean, running_var,
                                                     weight, bias, training, eps);
  check_like_input(residual, op, "residual", shape);
  return marshal::call<float, double>(
      op, in(input, "input"), opt(residual, "residual"), opt(weight, "weight"),
      opt(bias, "bias"), opt_inout(running_mean, "running_mean", training),
      opt_inout(running_var, "running_var", training), out(shape), out({sz.c}), out({sz.c}),
      [&](auto* x, auto* r, auto* w, auto* b, auto* rm, auto* rv, auto* y, auto* mean,
          auto* invstd) {
        batch_norm_relu_forward(x, r, y, sz, w, b, rm, rv, training, momentum, eps, mean,
                                invstd);
      });
}

py::object batch_norm_relu_backward_py(const py::array& grad_output, const py::array& output,
                                       const py::array& input, const OptArray& weight,
                                       const py::array& save_mean,
                                       const py::array& save_invstd, bool training,
                                       bool residual_grad) {
  const char* op = "batch_norm_relu_backward";
  const Shape shape = shape_of(input);
  const BatchNormSizes sz =
      check_batch_norm_backward(op, shape, grad_output, weight, save_mean, save_invstd);
  check_like_input(output, op, "output", shape);
  return marshal::call<float, double>(
      op, in(input, "input"), in(grad_output, "grad_output"), in(output, "output"),
      opt(weight, "weight"), in(save_mean, "save_mean"), in(save_invstd, "save_invstd"),
      out(shape), out({sz.c}), out({sz.c}), out(shape, residual_grad),
      [&](auto* x, auto* dy, auto* y, auto* w, auto* mean, auto* invstd, auto* dx, auto* dw,
          auto* db, auto* dr) {
        batch_norm_relu_backward(dy, y, x, sz, w, mean, invstd, training, dx, dw, db, dr);
      });
}

py::object group_norm_forward_py(const py::array& input, int64_t num_groups,
                                 const OptArray& weight, const OptArray& bias, double eps) {
  const char* op = "group_norm";
  const Shape shape = shape_of(input);
  const GroupNormSizes sz = group_norm_sizes(op, shape, num_groups);
  check_eps(op, eps, true);
  check_channel(weight, op, "weight", shape);
  check_channel(bias, op, "bias", shape);
  return marshal::call<float, double>(
      op, in(input, "input"), opt(weight, "weight"), opt(bias, "bias"), out(shape),
      out({sz.n, sz.groups}), out({sz.n, sz.groups}),
      [&](auto* x, auto* w, auto* b, auto* y, auto* mean, auto* rstd) {
        group_norm_forward(x, y, sz, w, b, eps, mean, rstd);
      });
}

py::object group_norm_backward_py(const py::array& grad_output, const py::array& input,
                                  const OptArray& weight, const py::array& mean,
                                  const py::array& rstd, int64_t num_groups, bool input_grad,
                                  bool weight_grad, bool bias_grad) {
  const char* op = "group_norm_backward";
  const Shape shape = shape_of(input);
  const GroupNormSizes sz = group_norm_sizes(op, shape, num_groups);
  check_grad_output(shape_of(grad_output), shape, op);
  check_channel(weight, op, "weight", shape);
  check_group_stats(shape_of(mean), shape_of(rstd), sz, op);
  return marshal::call<float, double>(
      op, in(input, "input"), in(grad_output, "grad_output"), opt(weight, "weight"),
      in(mean, "mean"), in(rstd, "rstd"), out(shape, input_grad), out({sz.c}, weight_grad),
      out({sz.c}, bias_grad),
      [&](auto* x, auto* dy, auto* w, auto* mp, auto* rp, auto* dx, auto* dw, auto* db) {
        group_norm_backward(dy, x, sz, w, mp, rp, dx, dw, db);
      });
}

// weight and bias of layer_norm, when present, have normalized_shape.
void check_affine(const OptArray& a, const char* op, const char* name, const Shape& norm_shape) {
  if (a) check_layer_affine(shape_of(*a), op, name, norm_shape);
}

py::object layer_norm_forward_py(const py::array& input, const Shape& normalized_shape,
                                 const OptArray& weight, const OptArray& bias, double eps) {
  const char* op = "layer_norm";
  const Shape shape = shape_of(input);
  const LayerNormSizes sz = layer_norm_sizes(op, shape, normalized_shape);
  check_eps(op, eps, false);
  check_affine(weight, op, "weight", normalized_shape);
  check_affine(bias, op, "bias", normalized_shape);
  return marshal::call<float, double>(
      op, in(input, "input"), opt(weight, "weight"), opt(bias, "bias"), out(shape),
      out({sz.rows}), out({sz.rows}),
      [&](auto* x, auto* w, auto* b, auto* y, auto* mean, auto* rstd) {
        layer_norm_forward(x, y, sz, w, b, eps, mean, rstd);
      });
}

py::object layer_norm_backward_py(const py::array& grad_output, const py::array& input,
                                  const Shape& normalized_shape, const OptArray& weight,
                                  const py::array& mean, const py::array& rstd, bool input_grad,
                                  bool weight_grad, bool bias_grad) {
  const char* op = "layer_norm_backward";
  const Shape shape = shape_of(input);
  const LayerNormSizes sz = layer_norm_sizes(op, shape, normalized_shape);
  check_grad_output(shape_of(grad_output), shape, op);
  check_affine(weight, op, "weight", normalized_shape);
  check_row_stat(shape_of(mean), op, "mean", sz);
  check_row_stat(shape_of(rstd), op, "rstd", sz);
  return marshal::call<float, double>(
      op, in(input, "input"), in(grad_output, "grad_output"), opt(weight, "weight"),
      in(mean, "mean"), in(rstd, "rstd"), out(shape, input_grad),
      out(normalized_shape, weight_grad), out(normalized_shape, bias_grad),
      [&](auto* x, auto* dy, auto* w, auto* mp, auto* rp, auto* dx, auto* dw, auto* db) {
        layer_norm_backward(dy, x, sz, w, mp, rp, dx, dw, db);
      });
}

py::object local_response_norm_forward_py(const py::array& input, int64_t size, double alpha,
                                          double beta, double k) {
  const char* op = "local_response_norm";
  const Shape shape = shape_of(input);
  const LocalResponseNormArgs args{size, alpha, beta, k};
  const BatchNormSizes sz = local_response_norm_sizes(op, shape, args);
  return marshal::call<float, double>(op, in(input, "input"), out(shape), [&](auto* x, auto* y) {
    local_response_norm_forward(x, y, sz, args);
  });
}

py::object local_response_norm_backward_py(const py::array& grad_output, const py::array& input,
                                           int64_t size, double alpha, double beta, double k) {
  const char* op = "local_response_norm_backward";
  const Shape shape = shape_of(input);
  const LocalResponseNormArgs args{size, alpha, beta, k};
  const BatchNormSizes sz = local_response_norm_sizes(op, shape, args);
  check_grad_output(shape_of(grad_output), shape, op);
  return marshal::call<float, double>(
      op, in(input, "input"), in(grad_output, "grad_output"), out(shape),
      [&](auto* x, auto* dy, auto* dx) { local_response_norm_backward(dy, x, dx, sz, args); });
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
  m.def("batch_norm_relu_forward", &batch_norm_relu_forward_py, py::arg("input"),
        py::arg("residual"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        R"doc(Fused batch norm + (residual add) + ReLU: returns (output, save_mean, save_invstd).

output = relu(batch_norm(input) + residual) in one pass over memory; residual
has input's shape, or None (no add). The other arguments, the running
statistics' in-place update and save_mean / save_invstd are batch_norm_forward's.)doc");
  m.def("batch_norm_relu_backward", &batch_norm_relu_backward_py, py::arg("grad_output"),
        py::arg("output"), py::arg("input"), py::arg("weight"), py::arg("save_mean"),
        py::arg("save_invstd"), py::arg("training") = false, py::arg("residual_grad") = false,
        R"doc(Gradients of batch_norm_relu: returns (grad_input, grad_weight, grad_bias,
grad_residual), grad_residual None unless residual_grad.

grad_output, output (the forward's result) and input (N, C, *); the others as
batch_norm_backward. The gradient reaching batch norm is grad_output where
output > 0, else 0; grad_residual is that gradient.)doc");
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
  m.def("layer_norm_forward", &layer_norm_forward_py, py::arg("input"),
        py::arg("normalized_shape"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("eps") = 1e-5,
        R"doc(Layer normalization: returns (output, mean, rstd).

input (*, normalized_shape) float32 or float64; normalized_shape (non-empty)
must equal input's trailing dims; weight, bias of shape normalized_shape and
input's dtype, or None (1 and 0); eps >= 0. Each of the M = numel / D rows of
D = prod(normalized_shape) values is normalized with its mean and biased
variance: output = (input - mean) * rstd * weight + bias, rstd = 1/sqrt(var + eps).
output has input's shape; mean and rstd (M,) go to layer_norm_backward.)doc");
  m.def("layer_norm_backward", &layer_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("normalized_shape"), py::arg("weight"), py::arg("mean"), py::arg("rstd"),
        py::arg("input_grad") = true, py::arg("weight_grad") = true, py::arg("bias_grad") = true,
        R"doc(Gradients of layer_norm: returns (grad_input, grad_weight, grad_bias), each
None when not requested.

grad_output and input (*, normalized_shape); weight of normalized_shape or
None; mean, rstd (M,) from layer_norm_forward. grad_input has input's shape;
grad_weight = sum of grad_output * (input - mean) * rstd and grad_bias = sum
of grad_output over the leading (*) dims, each of normalized_shape.)doc");
  m.def("local_response_norm_forward", &local_response_norm_forward_py, py::arg("input"),
        py::arg("size"), py::arg("alpha") = 1e-4, py::arg("beta") = 0.75, py::arg("k") = 1.0,
        R"doc(Local response normalization across channels (AlexNet's, as PyTorch).

input (N, C, *) with at least 3 dims, float32 or float64; size > 0. Returns
output of input's shape: x[c] / (k + alpha/size * sum of x[j]^2 over
j in [c - size//2, c + (size-1)//2], zero-padded)^beta.)doc");
  m.def("local_response_norm_backward", &local_response_norm_backward_py,
        py::arg("grad_output"), py::arg("input"), py::arg("size"), py::arg("alpha") = 1e-4,
        py::arg("beta") = 0.75, py::arg("k") = 1.0,
        R"doc(Gradient of local_response_norm with respect to its input.

grad_output and input (N, C, *); size, alpha, beta, k as given to the forward.
Returns grad_input of input's shape.)doc");
}

}  // namespace kiln::bind
