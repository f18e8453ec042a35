// kiln._C_cuda batch (also fused with a residual add and ReLU), group, layer and local
// response normalization: the twins of bindings/norm.cpp on CUDA arrays (same names,
// arguments, checks and results; cuda/norm.h). batch_norm_forward and
// batch_norm_relu_forward update running_mean / running_var in place when training,
// as on the CPU.
#include <optional>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/norm_args.h"
#include "cuda/norm.h"

namespace kiln::cuda::bind {
namespace {

using kiln::bind::check_grad_output;

// An optional per-channel operand: shape (C,) when present.
std::optional<DeviceView> channel_operand(py::handle obj, const DeviceView& x, const char* op,
                                          const char* name) {
  auto v = optional_operand(obj, x, op, name);
  if (v) check_channel_param(op, name, v->shape, x.shape);
  return v;
}

// An optional operand of layer norm's normalized_shape.
std::optional<DeviceView> affine_operand(py::handle obj, const DeviceView& x,
                                         const Shape& normalized_shape, const char* op,
                                         const char* name) {
  auto v = optional_operand(obj, x, op, name);
  if (v) kiln::bind::check_layer_affine(v->shape, op, name, normalized_shape);
  return v;
}

// batch_norm_forward, or with `fused` batch_norm_relu_forward (residual: None or
// input's shape): the same checks, then one of the two kernels.
py::object batch_norm_forward_impl(const char* op, bool fused, py::handle input,
                                   py::handle residual_obj, py::handle running_mean_obj,
                                   py::handle running_var_obj, py::handle weight_obj,
                                   py::handle bias_obj, bool training, double momentum,
                                   double eps) {
  const DeviceView x = view_of(input, op, "input");
  const BatchNormSizes sz = batch_norm_sizes(op, x.shape);
  kiln::bind::check_batch_norm_call(op, x.shape, training, !running_mean_obj.is_none(),
                                    !running_var_obj.is_none(), eps);
  const auto weight = channel_operand(weight_obj, x, op, "weight");
  const auto bias = channel_operand(bias_obj, x, op, "bias");
  const auto running_mean = channel_operand(running_mean_obj, x, op, "running_mean");
  const auto running_var = channel_operand(running_var_obj, x, op, "running_var");
  const auto residual = optional_operand(residual_obj, x, op, "residual");
  if (residual) kiln::bind::check_input_shaped(residual->shape, op, "residual", x.shape);
  ArrayPtr y = output(x.shape, x), mean = output({sz.c}, x), invstd = output({sz.c}, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    if (fused)
      cuda::batch_norm_relu_forward(x.ptr<T>(), ptr_or_null<T>(residual), y->ptr<T>(), sz,
                                    ptr_or_null<T>(weight), ptr_or_null<T>(bias),
                                    ptr_or_null<T>(running_mean), ptr_or_null<T>(running_var),
                                    training, momentum, eps, mean->ptr<T>(), invstd->ptr<T>());
    else
      cuda::batch_norm_forward(x.ptr<T>(), y->ptr<T>(), sz, ptr_or_null<T>(weight),
                               ptr_or_null<T>(bias), ptr_or_null<T>(running_mean),
                               ptr_or_null<T>(running_var), training, momentum, eps,
                               mean->ptr<T>(), invstd->ptr<T>());
  });
  return py::make_tuple(y, mean, invstd);
}

py::object batch_norm_forward_py(py::handle input, py::handle running_mean,
                                 py::handle running_var, py::handle weight, py::handle bias,
                                 bool training, double momentum, double eps) {
  return batch_norm_forward_impl("batch_norm", false, input, py::none(), running_mean,
                                 running_var, weight, bias, training, momentum, eps);
}

py::object batch_norm_relu_forward_py(py::handle input, py::handle residual,
                                      py::handle running_mean, py::handle running_var,
                                      py::handle weight, py::handle bias, bool training,
                                      double momentum, double eps) {
  return batch_norm_forward_impl("batch_norm_relu", true, input, residual, running_mean,
                                 running_var, weight, bias, training, momentum, eps);
}

// batch_norm_backward, or with `fused` batch_norm_relu_backward (output_obj: the fused
// forward's output), which also returns grad_residual (None unless residual_grad).
py::object batch_norm_backward_impl(const char* op, bool fused, py::handle grad_output,
                                    py::handle output_obj, py::handle input,
                                    py::handle weight_obj, py::handle save_mean_obj,
                                    py::handle save_invstd_obj, bool training,
                                    bool residual_grad) {
  const DeviceView x = view_of(input, op, "input");
  const BatchNormSizes sz = batch_norm_sizes(op, x.shape);
  const DeviceView dy = operand(grad_output, x, op, "grad_output");
  check_grad_output(dy.shape, x.shape, op);
  const auto weight = channel_operand(weight_obj, x, op, "weight");
  const DeviceView save_mean = operand(save_mean_obj, x, op, "save_mean");
  const DeviceView save_invstd = operand(save_invstd_obj, x, op, "save_invstd");
  check_channel_param(op, "save_mean", save_mean.shape, x.shape);
  check_channel_param(op, "save_invstd", save_invstd.shape, x.shape);
  std::optional<DeviceView> y;
  if (fused) {
    y = operand(output_obj, x, op, "output");
    kiln::bind::check_input_shaped(y->shape, op, "output", x.shape);
  }
  ArrayPtr dx = output(x.shape, x), dw = output({sz.c}, x), db = output({sz.c}, x),
           dr = output(x.shape, x, fused && residual_grad);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    if (fused)
      cuda::batch_norm_relu_backward(dy.ptr<T>(), y->ptr<T>(), x.ptr<T>(), sz,
                                     ptr_or_null<T>(weight), save_mean.ptr<T>(),
                                     save_invstd.ptr<T>(), training, dx->ptr<T>(), dw->ptr<T>(),
                                     db->ptr<T>(), ptr_or_null<T>(dr));
    else
      cuda::batch_norm_backward(dy.ptr<T>(), x.ptr<T>(), sz, ptr_or_null<T>(weight),
                                save_mean.ptr<T>(), save_invstd.ptr<T>(), training, dx->ptr<T>(),
                                dw->ptr<T>(), db->ptr<T>());
  });
  if (fused) return py::make_tuple(dx, dw, db, or_none(dr));
  return py::make_tuple(dx, dw, db);
}

py::object batch_norm_backward_py(py::handle grad_output, py::handle input, py::handle weight,
                                  py::handle save_mean, py::handle save_invstd, bool training) {
  return batch_norm_backward_impl("batch_norm_backward", false, grad_output, py::none(), input,
                                  weight, save_mean, save_invstd, training, false);
}

py::object batch_norm_relu_backward_py(py::handle grad_output, py::handle output,
                                       py::handle input, py::handle weight,
                                       py::handle save_mean, py::handle save_invstd,
                                       bool training, bool residual_grad) {
  return batch_norm_backward_impl("batch_norm_relu_backward", true, grad_output, output, input,
                                  weight, save_mean, save_invstd, training, residual_grad);
}

py::object group_norm_forward_py(py::handle input, int64_t num_groups, py::handle weight_obj,
                                 py::handle bias_obj, double eps) {
  const char* op = "group_norm";
  const DeviceView x = view_of(input, op, "input");
  const GroupNormSizes sz = group_norm_sizes(op, x.shape, num_groups);
  kiln::bind::check_eps(op, eps, true);
  const auto weight = channel_operand(weight_obj, x, op, "weight");
  const auto bias = channel_operand(bias_obj, x, op, "bias");
  ArrayPtr y = output(x.shape, x), mean = output({sz.n, sz.groups}, x),
           rstd = output({sz.n, sz.groups}, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::group_norm_forward(x.ptr<T>(), y->ptr<T>(), sz, ptr_or_null<T>(weight),
                             ptr_or_null<T>(bias), eps, mean->ptr<T>(), rstd->ptr<T>());
  });
  return py::make_tuple(y, mean, rstd);
}

py::object group_norm_backward_py(py::handle grad_output, py::handle input, py::handle weight_obj,
                                  py::handle mean_obj, py::handle rstd_obj, int64_t num_groups,
                                  bool input_grad, bool weight_grad, bool bias_grad) {
  const char* op = "group_norm_backward";
  const DeviceView x = view_of(input, op, "input");
  const GroupNormSizes sz = group_norm_sizes(op, x.shape, num_groups);
  const DeviceView dy = operand(grad_output, x, op, "grad_output");
  check_grad_output(dy.shape, x.shape, op);
  const auto weight = channel_operand(weight_obj, x, op, "weight");
  const DeviceView mean = operand(mean_obj, x, op, "mean");
  const DeviceView rstd = operand(rstd_obj, x, op, "rstd");
  kiln::bind::check_group_stats(mean.shape, rstd.shape, sz, op);
  ArrayPtr dx = output(x.shape, x, input_grad), dw = output({sz.c}, x, weight_grad),
           db = output({sz.c}, x, bias_grad);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::group_norm_backward(dy.ptr<T>(), x.ptr<T>(), sz, ptr_or_null<T>(weight), mean.ptr<T>(),
                              rstd.ptr<T>(), ptr_or_null<T>(dx), ptr_or_null<T>(dw),
                              ptr_or_null<T>(db));
  });
  return py::make_tuple(or_none(dx), or_none(dw), or_none(db));
}

py::object layer_norm_forward_py(py::handle input, const Shape& normalized_shape,
                                 py::handle weight_obj, py::handle bias_obj, double eps) {
  const char* op = "layer_norm";
  const DeviceView x = view_of(input, op, "input");
  const LayerNormSizes sz = layer_norm_sizes(op, x.shape, normalized_shape);
  kiln::bind::check_eps(op, eps, false);
  const auto weight = affine_operand(weight_obj, x, normalized_shape, op, "weight");
  const auto bias = affine_operand(bias_obj, x, normalized_shape, op, "bias");
  ArrayPtr y = output(x.shape, x), mean = output({sz.rows}, x), rstd = output({sz.rows}, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::layer_norm_forward(x.ptr<T>(), y->ptr<T>(), sz, ptr_or_null<T>(weight),
                             ptr_or_null<T>(bias), eps, mean->ptr<T>(), rstd->ptr<T>());
  });
  return py::make_tuple(y, mean, rstd);
}

py::object layer_norm_backward_py(py::handle grad_output, py::handle input,
                                  const Shape& normalized_shape, py::handle weight_obj,
                                  py::handle mean_obj, py::handle rstd_obj, bool input_grad,
                                  bool weight_grad, bool bias_grad) {
  const char* op = "layer_norm_backward";
  const DeviceView x = view_of(input, op, "input");
  const LayerNormSizes sz = layer_norm_sizes(op, x.shape, normalized_shape);
  const DeviceView dy = operand(grad_output, x, op, "grad_output");
  check_grad_output(dy.shape, x.shape, op);
  const auto weight = affine_operand(weight_obj, x, normalized_shape, op, "weight");
  const DeviceView mean = operand(mean_obj, x, op, "mean");
  const DeviceView rstd = operand(rstd_obj, x, op, "rstd");
  kiln::bind::check_row_stat(mean.shape, op, "mean", sz);
  kiln::bind::check_row_stat(rstd.shape, op, "rstd", sz);
  ArrayPtr dx = output(x.shape, x, input_grad), dw = output(normalized_shape, x, weight_grad),
           db = output(normalized_shape, x, bias_grad);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::layer_norm_backward(dy.ptr<T>(), x.ptr<T>(), sz, ptr_or_null<T>(weight), mean.ptr<T>(),
                              rstd.ptr<T>(), ptr_or_null<T>(dx), ptr_or_null<T>(dw),
                              ptr_or_null<T>(db));
  });
  return py::make_tuple(or_none(dx), or_none(dw), or_none(db));
}

py::object local_response_norm_forward_py(py::handle input, int64_t size, double alpha,
                                          double beta, double k) {
  const char* op = "local_response_norm";
  const DeviceView x = view_of(input, op, "input");
  const LocalResponseNormArgs args{size, alpha, beta, k};
  const BatchNormSizes sz = local_response_norm_sizes(op, x.shape, args);
  ArrayPtr y = output(x.shape, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::local_response_norm_forward(x.ptr<T>(), y->ptr<T>(), sz, args);
  });
  return py::cast(y);
}

py::object local_response_norm_backward_py(py::handle grad_output, py::handle input, int64_t size,
                                           double alpha, double beta, double k) {
  const char* op = "local_response_norm_backward";
  const DeviceView x = view_of(input, op, "input");
  const LocalResponseNormArgs args{size, alpha, beta, k};
  const BatchNormSizes sz = local_response_norm_sizes(op, x.shape, args);
  const DeviceView dy = operand(grad_output, x, op, "grad_output");
  check_grad_output(dy.shape, x.shape, op);
  ArrayPtr dx = output(x.shape, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::local_response_norm_backward(dy.ptr<T>(), x.ptr<T>(), dx->ptr<T>(), sz, args);
  });
  return py::cast(dx);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward_py, py::arg("input"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        "Batch normalization on the GPU: returns (output, save_mean, save_invstd); input (N, C, "
        "*), per-channel arrays (C,); training=True updates running_mean / running_var in "
        "place.");
  m.def("batch_norm_backward", &batch_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("save_mean"), py::arg("save_invstd"),
        py::arg("training") = false,
        "Gradients of batch_norm on the GPU: returns (grad_input, grad_weight, grad_bias).");
  m.def("batch_norm_relu_forward", &batch_norm_relu_forward_py, py::arg("input"),
        py::arg("residual"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5,
        twin_doc("batch_norm_relu_forward").c_str());
  m.def("batch_norm_relu_backward", &batch_norm_relu_backward_py, py::arg("grad_output"),
        py::arg("output"), py::arg("input"), py::arg("weight"), py::arg("save_mean"),
        py::arg("save_invstd"), py::arg("training") = false, py::arg("residual_grad") = false,
        twin_doc("batch_norm_relu_backward").c_str());
  m.def("group_norm_forward", &group_norm_forward_py, py::arg("input"), py::arg("num_groups"),
        py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5,
        "Group normalization on the GPU: returns (output, mean, rstd); mean, rstd (N, G).");
  m.def("group_norm_backward", &group_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("mean"), py::arg("rstd"), py::arg("num_groups"),
        py::arg("input_grad") = true, py::arg("weight_grad") = true, py::arg("bias_grad") = true,
        "Gradients of group_norm on the GPU: returns (grad_input, grad_weight, grad_bias), each "
        "None when not requested.");
  m.def("layer_norm_forward", &layer_norm_forward_py, py::arg("input"),
        py::arg("normalized_shape"), py::arg("weight") = py::none(), py::arg("bias") = py::none(),
        py::arg("eps") = 1e-5,
        "Layer normalization on the GPU: returns (output, mean, rstd); mean, rstd (M,).");
  m.def("layer_norm_backward", &layer_norm_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("normalized_shape"), py::arg("weight"), py::arg("mean"), py::arg("rstd"),
        py::arg("input_grad") = true, py::arg("weight_grad") = true, py::arg("bias_grad") = true,
        "Gradients of layer_norm on the GPU: returns (grad_input, grad_weight, grad_bias), each "
        "None when not requested.");
  m.def("local_response_norm_forward", &local_response_norm_forward_py, py::arg("input"),
        py::arg("size"), py::arg("alpha") = 1e-4, py::arg("beta") = 0.75, py::arg("k") = 1.0,
        "Local response normalization across channels on the GPU: input (N, C, *) -> output of "
        "input's shape.");
  m.def("local_response_norm_backward", &local_response_norm_backward_py,
        py::arg("grad_output"), py::arg("input"), py::arg("size"), py::arg("alpha") = 1e-4,
        py::arg("beta") = 0.75, py::arg("k") = 1.0,
        "Gradient of local_response_norm on the GPU -> grad_input of input's shape.");
}

}  // namespace kiln::cuda::bind
