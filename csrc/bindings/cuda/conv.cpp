// kiln._C_cuda conv2d, conv_transpose2d, unfold and fold: the twins of
// bindings/conv.cpp on CUDA arrays (same names, arguments, checks and results;
// cuda/conv.h). conv_transpose2d runs conv2d's maps swapped, as on the CPU.
#include "bindings/conv_args.h"
#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "cuda/conv.h"

namespace kiln::cuda::bind {
namespace {

using kiln::bind::ConvGeometry;

py::object conv2d_forward_py(py::handle x_obj, py::handle w_obj, py::handle bias_obj,
                             py::handle stride, py::handle padding, py::handle dilation,
                             int64_t groups) {
  const char* op = "conv2d";
  const DeviceView x = view_of(x_obj, op, "input");
  const DeviceView w = operand(w_obj, x, op, "weight");
  const auto bias = optional_operand(bias_obj, x, op, "bias");
  const ConvGeometry g =
      kiln::bind::conv2d_geometry(op, x.shape, w.shape, stride, padding, dilation, groups);
  if (bias) cpu::check_shape(op, "bias", bias->shape, {g.K});
  ArrayPtr y = output(g.output_shape(), x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_forward(g, x.ptr<T>(), w.ptr<T>(), ptr_or_null<T>(bias), y->ptr<T>());
  });
  return py::cast(y);
}

py::object conv2d_backward_input_py(py::handle dy_obj, py::handle w_obj, const Shape& input_shape,
                                    py::handle stride, py::handle padding, py::handle dilation,
                                    int64_t groups) {
  const char* op = "conv2d_backward_input";
  const DeviceView dy = view_of(dy_obj, op, "grad_output");
  const DeviceView w = operand(w_obj, dy, op, "weight");
  const ConvGeometry g =
      kiln::bind::conv2d_geometry(op, input_shape, w.shape, stride, padding, dilation, groups);
  cpu::check_shape(op, "grad_output", dy.shape, g.output_shape());
  ArrayPtr dx = output(g.input_shape(), dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_backward_input(g, dy.ptr<T>(), w.ptr<T>(), dx->ptr<T>());
  });
  return py::cast(dx);
}

py::object conv2d_backward_weight_py(py::handle dy_obj, py::handle x_obj,
                                     const Shape& weight_shape, py::handle stride,
                                     py::handle padding, py::handle dilation, int64_t groups) {
  const char* op = "conv2d_backward_weight";
  const DeviceView dy = view_of(dy_obj, op, "grad_output");
  const DeviceView x = operand(x_obj, dy, op, "input");
  const ConvGeometry g =
      kiln::bind::conv2d_geometry(op, x.shape, weight_shape, stride, padding, dilation, groups);
  cpu::check_shape(op, "grad_output", dy.shape, g.output_shape());
  ArrayPtr dw = output(g.weight_shape(), dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_backward_weight(g, dy.ptr<T>(), x.ptr<T>(), dw->ptr<T>());
  });
  return py::cast(dw);
}

py::object conv_backward_bias_py(const char* op, py::handle dy_obj) {
  const DeviceView dy = view_of(dy_obj, op, "grad_output");
  const Shape& s = dy.shape;
  kiln::bind::check_bias_grad(op, s);
  ArrayPtr db = output({s[1]}, dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::channel_sum(s[0], s[1], s[2] * s[3], dy.ptr<T>(), db->ptr<T>());
  });
  return py::cast(db);
}

py::object conv_transpose2d_forward_py(py::handle x_obj, py::handle w_obj, py::handle bias_obj,
                                       py::handle stride, py::handle padding,
                                       py::handle output_padding, int64_t groups,
                                       py::handle dilation) {
  const char* op = "conv_transpose2d";
  const DeviceView x = view_of(x_obj, op, "input");
  const DeviceView w = operand(w_obj, x, op, "weight");
  const auto bias = optional_operand(bias_obj, x, op, "bias");
  const ConvGeometry g = kiln::bind::transpose_geometry(op, x.shape, w.shape, stride, padding,
                                                        output_padding, groups, dilation);
  if (bias) cpu::check_shape(op, "bias", bias->shape, {g.C});
  ArrayPtr y = output(g.input_shape(), x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_backward_input(g, x.ptr<T>(), w.ptr<T>(), y->ptr<T>());
    if (bias) cuda::add_channel_bias(g.N, g.C, g.H * g.W, bias->ptr<T>(), y->ptr<T>());
  });
  return py::cast(y);
}

py::object conv_transpose2d_backward_input_py(py::handle dy_obj, py::handle w_obj,
                                              const Shape& input_shape, py::handle stride,
                                              py::handle padding, py::handle output_padding,
                                              int64_t groups, py::handle dilation) {
  const char* op = "conv_transpose2d_backward_input";
  const DeviceView dy = view_of(dy_obj, op, "grad_output");
  const DeviceView w = operand(w_obj, dy, op, "weight");
  const ConvGeometry g = kiln::bind::transpose_geometry(op, input_shape, w.shape, stride, padding,
                                                        output_padding, groups, dilation);
  cpu::check_shape(op, "grad_output", dy.shape, g.input_shape());
  ArrayPtr dx = output(g.output_shape(), dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_forward(g, dy.ptr<T>(), w.ptr<T>(), static_cast<const T*>(nullptr), dx->ptr<T>());
  });
  return py::cast(dx);
}

py::object conv_transpose2d_backward_weight_py(py::handle dy_obj, py::handle x_obj,
                                               const Shape& weight_shape, py::handle stride,
                                               py::handle padding, py::handle output_padding,
                                               int64_t groups, py::handle dilation) {
  const char* op = "conv_transpose2d_backward_weight";
  const DeviceView dy = view_of(dy_obj, op, "grad_output");
  const DeviceView x = operand(x_obj, dy, op, "input");
  const ConvGeometry g = kiln::bind::transpose_geometry(op, x.shape, weight_shape, stride,
                                                        padding, output_padding, groups, dilation);
  cpu::check_shape(op, "grad_output", dy.shape, g.input_shape());
  ArrayPtr dw = output(g.weight_shape(), dy);
  // conv2d's weight gradient with x in the role of dy and dy in the role of x.
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::conv2d_backward_weight(g, x.ptr<T>(), dy.ptr<T>(), dw->ptr<T>());
  });
  return py::cast(dw);
}

py::object unfold_forward_py(py::handle x_obj, py::handle kernel_size, py::handle dilation,
                             py::handle padding, py::handle stride) {
  const char* op = "unfold";
  const DeviceView x = view_of(x_obj, op, "input");
  const ConvGeometry g =
      kiln::bind::window_geometry(op, x.shape, kernel_size, dilation, padding, stride);
  ArrayPtr col = output(Shape{g.N, g.C * g.R * g.S, g.P * g.Q}, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::unfold_images(g, x.ptr<T>(), col->ptr<T>());
  });
  return py::cast(col);
}

py::object fold_forward_py(py::handle col_obj, py::handle output_size, py::handle kernel_size,
                           py::handle dilation, py::handle padding, py::handle stride) {
  const char* op = "fold";
  const DeviceView col = view_of(col_obj, op, "input");
  const ConvGeometry g = kiln::bind::fold_geometry(op, col.shape, output_size, kernel_size,
                                                   dilation, padding, stride);
  ArrayPtr x = output(g.input_shape(), col);
  launch(col, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::fold_images(g, col.ptr<T>(), x->ptr<T>());
  });
  return py::cast(x);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("unfold_forward", &unfold_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("dilation") = 1, py::arg("padding") = 0, py::arg("stride") = 1,
        "Sliding local blocks (im2col) on the GPU: input (N, C, H, W) -> (N, C*kh*kw, L).");
  m.def("fold_forward", &fold_forward_py, py::arg("input"), py::arg("output_size"),
        py::arg("kernel_size"), py::arg("dilation") = 1, py::arg("padding") = 0,
        py::arg("stride") = 1,
        "Sums sliding local blocks back into images (col2im) on the GPU: input (N, C*kh*kw, L) "
        "-> (N, C, *output_size).");
  m.def("conv2d_forward", &conv2d_forward_py, py::arg("input"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "2-D convolution on the GPU: input (N, C, H, W), weight (K, C/groups, kH, kW), bias (K,) "
        "or None -> output (N, K, P, Q).");
  m.def("conv2d_backward_input", &conv2d_backward_input_py, py::arg("grad_output"),
        py::arg("weight"), py::arg("input_shape"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "Gradient of conv2d with respect to its input: grad_output (N, K, P, Q) -> (N, C, H, W).");
  m.def("conv2d_backward_weight", &conv2d_backward_weight_py, py::arg("grad_output"),
        py::arg("input"), py::arg("weight_shape"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        "Gradient of conv2d with respect to its weight -> (K, C/groups, kH, kW).");
  m.def("conv2d_backward_bias",
        [](py::handle dy) { return conv_backward_bias_py("conv2d_backward_bias", dy); },
        py::arg("grad_output"),
        "Gradient of conv2d with respect to its bias: grad_output (N, K, P, Q) summed over N, P "
        "and Q -> (K,).");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward_py, py::arg("input"),
        py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        "Transposed 2-D convolution on the GPU: input (N, Cin, H, W), weight (Cin, Cout/groups, "
        "kH, kW), bias (Cout,) or None -> output (N, Cout, Hout, Wout).");
  m.def("conv_transpose2d_backward_input", &conv_transpose2d_backward_input_py,
        py::arg("grad_output"), py::arg("weight"), py::arg("input_shape"), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        "Gradient of conv_transpose2d with respect to its input -> (N, Cin, H, W).");
  m.def("conv_transpose2d_backward_weight", &conv_transpose2d_backward_weight_py,
        py::arg("grad_output"), py::arg("input"), py::arg("weight_shape"), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        "Gradient of conv_transpose2d with respect to its weight -> (Cin, Cout/groups, kH, kW).");
  m.def("conv_transpose2d_backward_bias",
        [](py::handle dy) { return conv_backward_bias_py("conv_transpose2d_backward_bias", dy); },
        py::arg("grad_output"),
        "Gradient of conv_transpose2d with respect to its bias: grad_output summed over N, Hout "
        "and Wout -> (Cout,).");
}

}  // namespace kiln::cuda::bind
