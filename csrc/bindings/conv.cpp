// conv2d and conv_transpose2d kernels on NumPy arrays (see csrc/cpu/conv.h).
#include "cpu/conv.h"

#include "bindings/conv_args.h"
#include "bindings/families.h"
#include "bindings/marshal.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::out;

py::object conv2d_forward(const py::array& x, const py::array& w, const OptArray& bias,
                          py::handle stride, py::handle padding, py::handle dilation,
                          int64_t groups) {
  const char* op = "conv2d";
  const ConvGeometry g =
      conv2d_geometry(op, shape_of(x), shape_of(w), stride, padding, dilation, groups);
  if (bias) cpu::check_shape(op, "bias", shape_of(*bias), {g.K});
  return marshal::call<float, double>(
      op, in(x, "input"), in(w, "weight"), opt(bias, "bias"), out(g.output_shape()),
      [&](auto* x, auto* w, auto* b, auto* y) { cpu::conv2d_forward(g, x, w, b, y); });
}

py::object conv2d_backward_input(const py::array& dy, const py::array& w,
                                 const Shape& input_shape, py::handle stride, py::handle padding,
                                 py::handle dilation, int64_t groups) {
  const char* op = "conv2d_backward_input";
  const ConvGeometry g =
      conv2d_geometry(op, input_shape, shape_of(w), stride, padding, dilation, groups);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.output_shape());
  return marshal::call<float, double>(
      op, in(dy, "grad_output"), in(w, "weight"), out(g.input_shape()),
      [&](auto* dy, auto* w, auto* dx) { cpu::conv2d_backward_input(g, dy, w, dx); });
}

py::object conv2d_backward_weight(const py::array& dy, const py::array& x,
                                  const Shape& weight_shape, py::handle stride,
                                  py::handle padding, py::handle dilation, int64_t groups) {
  const char* op = "conv2d_backward_weight";
  const ConvGeometry g =
      conv2d_geometry(op, shape_of(x), weight_shape, stride, padding, dilation, groups);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.output_shape());
  return marshal::call<float, double>(
      op, in(dy, "grad_output"), in(x, "input"), out(g.weight_shape()),
      [&](auto* dy, auto* x, auto* dw) { cpu::conv2d_backward_weight(g, dy, x, dw); });
}

py::object conv_backward_bias(const char* op, const py::array& dy) {
  const Shape s = shape_of(dy);
  check_bias_grad(op, s);
  return marshal::call<float, double>(
      op, in(dy, "grad_output"), out({s[1]}),
      [&](auto* dy, auto* db) { cpu::channel_sum(s[0], s[1], s[2] * s[3], dy, db); });
}

py::object conv_transpose2d_forward(const py::array& x, const py::array& w, const OptArray& bias,
                                    py::handle stride, py::handle padding,
                                    py::handle output_padding, int64_t groups,
                                    py::handle dilation) {
  const char* op = "conv_transpose2d";
  const ConvGeometry g = transpose_geometry(op, shape_of(x), shape_of(w), stride, padding,
                                            output_padding, groups, dilation);
  if (bias) cpu::check_shape(op, "bias", shape_of(*bias), {g.C});
  return marshal::call<float, double>(
      op, in(x, "input"), in(w, "weight"), opt(bias, "bias"), out(g.input_shape()),
      [&](auto* x, auto* w, auto* b, auto* y) {
        cpu::conv2d_backward_input(g, x, w, y);
        if (b != nullptr) cpu::add_channel_bias(g.N, g.C, g.H * g.W, b, y);
      });
}

py::object conv_transpose2d_backward_input(const py::array& dy, const py::array& w,
                                           const Shape& input_shape, py::handle stride,
                                           py::handle padding, py::handle output_padding,
                                           int64_t groups, py::handle dilation) {
  const char* op = "conv_transpose2d_backward_input";
  const ConvGeometry g = transpose_geometry(op, input_shape, shape_of(w), stride, padding,
                                            output_padding, groups, dilation);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.input_shape());
  return marshal::call<float, double>(
      op, in(dy, "grad_output"), in(w, "weight"), out(g.output_shape()),
      [&](auto* dy, auto* w, auto* dx) {
        cpu::conv2d_forward(g, dy, w, static_cast<decltype(dy)>(nullptr), dx);
      });
}

py::object conv_transpose2d_backward_weight(const py::array& dy, const py::array& x,
                                            const Shape& weight_shape, py::handle stride,
                                            py::handle padding, py::handle output_padding,
                                            int64_t groups, py::handle dilation) {
  const char* op = "conv_transpose2d_backward_weight";
  const ConvGeometry g = transpose_geometry(op, shape_of(x), weight_shape, stride, padding,
                                            output_padding, groups, dilation);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.input_shape());
  // conv2d's weight gradient with x in the role of dy and dy in the role of x.
  return marshal::call<float, double>(
      op, in(dy, "grad_output"), in(x, "input"), out(g.weight_shape()),
      [&](auto* dy, auto* x, auto* dw) { cpu::conv2d_backward_weight(g, x, dy, dw); });
}

py::object unfold_forward(const py::array& x, py::handle kernel_size, py::handle dilation,
                          py::handle padding, py::handle stride) {
  const char* op = "unfold";
  const ConvGeometry g = window_geometry(op, shape_of(x), kernel_size, dilation, padding, stride);
  return marshal::call<float, double>(
      op, in(x, "input"), out(Shape{g.N, g.C * g.R * g.S, g.P * g.Q}),
      [&](auto* x, auto* col) { cpu::unfold_images(g, x, col); });
}

py::object fold_forward(const py::array& col, py::handle output_size, py::handle kernel_size,
                        py::handle dilation, py::handle padding, py::handle stride) {
  const char* op = "fold";
  const ConvGeometry g =
      fold_geometry(op, shape_of(col), output_size, kernel_size, dilation, padding, stride);
  return marshal::call<float, double>(op, in(col, "input"), out(g.input_shape()),
                                      [&](auto* col, auto* x) { cpu::fold_images(g, col, x); });
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("unfold_forward", &unfold_forward, py::arg("input"), py::arg("kernel_size"),
        py::arg("dilation") = 1, py::arg("padding") = 0, py::arg("stride") = 1,
        R"doc(Sliding local blocks (im2col): input (N, C, H, W) -> (N, C*kh*kw, L), L the
number of windows (conv2d's output pixels). Its gradient is fold_forward.)doc");
  m.def("fold_forward", &fold_forward, py::arg("input"), py::arg("output_size"),
        py::arg("kernel_size"), py::arg("dilation") = 1, py::arg("padding") = 0,
        py::arg("stride") = 1,
        R"doc(Sums sliding local blocks back into images (col2im): input (N, C*kh*kw, L) ->
(N, C, *output_size), overlapping entries added. Its gradient is unfold_forward.)doc");
  m.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("weight"),
        py::arg("bias") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        R"(2-D convolution (cross-correlation), as torch.nn.functional.conv2d.

input (N, C, H, W), weight (K, C/groups, kH, kW), bias (K,) or None -> output (N, K, P, Q)
with P = (H + 2*padding - dilation*(kH-1) - 1) // stride + 1 (Q likewise).
stride, padding, dilation: int or (h, w) pair. float32 or float64, C-contiguous.)");
  m.def("conv2d_backward_input", &conv2d_backward_input, py::arg("grad_output"),
        py::arg("weight"), py::arg("input_shape"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        R"(Gradient of conv2d with respect to its input.

grad_output (N, K, P, Q), weight (K, C/groups, kH, kW), input_shape (N, C, H, W)
-> grad_input (N, C, H, W).)");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("grad_output"),
        py::arg("input"), py::arg("weight_shape"), py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("groups") = 1,
        R"(Gradient of conv2d with respect to its weight.

grad_output (N, K, P, Q), input (N, C, H, W), weight_shape (K, C/groups, kH, kW)
-> grad_weight (K, C/groups, kH, kW).)");
  m.def("conv2d_backward_bias",
        [](const py::array& dy) { return conv_backward_bias("conv2d_backward_bias", dy); },
        py::arg("grad_output"),
        R"(Gradient of conv2d with respect to its bias: grad_output (N, K, P, Q) summed
over N, P and Q -> (K,).)");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward, py::arg("input"),
        py::arg("weight"), py::arg("bias") = py::none(), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        R"(Transposed 2-D convolution, as torch.nn.functional.conv_transpose2d.

input (N, Cin, H, W), weight (Cin, Cout/groups, kH, kW), bias (Cout,) or None
-> output (N, Cout, Hout, Wout) with
Hout = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1 (Wout likewise).)");
  m.def("conv_transpose2d_backward_input", &conv_transpose2d_backward_input,
        py::arg("grad_output"), py::arg("weight"), py::arg("input_shape"), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        R"(Gradient of conv_transpose2d with respect to its input.

grad_output (N, Cout, Hout, Wout), weight (Cin, Cout/groups, kH, kW),
input_shape (N, Cin, H, W) -> grad_input (N, Cin, H, W).)");
  m.def("conv_transpose2d_backward_weight", &conv_transpose2d_backward_weight,
        py::arg("grad_output"), py::arg("input"), py::arg("weight_shape"), py::arg("stride") = 1,
        py::arg("padding") = 0, py::arg("output_padding") = 0, py::arg("groups") = 1,
        py::arg("dilation") = 1,
        R"(Gradient of conv_transpose2d with respect to its weight.

grad_output (N, Cout, Hout, Wout), input (N, Cin, H, W),
weight_shape (Cin, Cout/groups, kH, kW) -> grad_weight (Cin, Cout/groups, kH, kW).)");
  m.def("conv_transpose2d_backward_bias",
        [](const py::array& dy) {
          return conv_backward_bias("conv_transpose2d_backward_bias", dy);
        },
        py::arg("grad_output"),
        R"(Gradient of conv_transpose2d with respect to its bias: grad_output
(N, Cout, Hout, Wout) summed over N, Hout and Wout -> (Cout,).)");
}

}  // namespace kiln::bind
