// conv2d and conv_transpose2d kernels on NumPy arrays (see csrc/cpu/conv.h).
#include "cpu/conv.h"

#include <pybind11/stl.h>

#include <vector>

#include "bindings/arrays.h"
#include "bindings/families.h"

namespace kiln::bind {
namespace {

using cpu::ConvGeometry;
using cpu::Pair;

bool is_int(const py::handle& v) {
  return py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v);
}

// An int, or a sequence of two ints, as PyTorch's conv arguments.
Pair to_pair(const py::handle& v, const char* op, const char* name) {
  if (is_int(v)) {
    const auto i = v.cast<int64_t>();
    return {i, i};
  }
  if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(v);
    if (seq.size() == 2 && is_int(seq[0]) && is_int(seq[1]))
      return {seq[0].cast<int64_t>(), seq[1].cast<int64_t>()};
  }
  fail<TypeError>(op, ": expected ", name, " to be an int or a pair of ints, got ",
                  py::repr(v).cast<std::string>());
}

// A tensor shape given as a sequence of ints (input_shape, weight_shape).
Shape to_shape(const py::handle& v, const char* op, const char* name) {
  if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
    Shape s;
    for (const auto& d : py::reinterpret_borrow<py::sequence>(v)) {
      if (!is_int(d)) fail<TypeError>(op, ": ", name, " must hold ints, got ",
                                       py::repr(v).cast<std::string>());
      s.push_back(d.cast<int64_t>());
    }
    return s;
  }
  fail<TypeError>(op, ": expected ", name, " to be a sequence of ints, got ",
                  py::repr(v).cast<std::string>());
}

struct Operand {
  const py::array* array;  // null for an absent optional operand
  const char* name;
};

// Checks every operand for the first one's float dtype and for C-contiguity,
// allocates the result of shape `out`, and runs kernel(pointers, result)
// with the GIL released.
template <typename Kernel>
py::array run(const char* op, const std::vector<Operand>& operands, const Shape& out,
              Kernel&& kernel) {
  return dispatch_float(*operands[0].array, op, operands[0].name, [&](auto tag) -> py::array {
    using T = decltype(tag);
    std::vector<const T*> ptrs;
    for (const Operand& o : operands)
      ptrs.push_back(o.array != nullptr ? data<T>(*o.array, op, o.name) : nullptr);
    auto result = empty<T>(out);
    T* rp = result.mutable_data();
    py::gil_scoped_release release;
    kernel(ptrs, rp);
    return std::move(result);
  });
}

void check_bias(const char* op, const OptArray& bias, int64_t channels) {
  if (bias) cpu::check_shape(op, "bias", shape_of(*bias), {channels});
}

ConvGeometry conv2d_geometry(const char* op, const Shape& input, const Shape& weight,
                             const py::object& stride, const py::object& padding,
                             const py::object& dilation, int64_t groups) {
  return cpu::conv2d_geometry(op, input, weight, to_pair(stride, op, "stride"),
                              to_pair(padding, op, "padding"), to_pair(dilation, op, "dilation"),
                              groups);
}

ConvGeometry transpose_geometry(const char* op, const Shape& input, const Shape& weight,
                                const py::object& stride, const py::object& padding,
                                const py::object& output_padding, int64_t groups,
                                const py::object& dilation) {
  return cpu::conv_transpose2d_geometry(
      op, input, weight, to_pair(stride, op, "stride"), to_pair(padding, op, "padding"),
      to_pair(output_padding, op, "output_padding"), to_pair(dilation, op, "dilation"), groups);
}

py::array conv2d_forward(const py::array& x, const py::array& w, const OptArray& bias,
                         const py::object& stride, const py::object& padding,
                         const py::object& dilation, int64_t groups) {
  const char* op = "conv2d";
  const ConvGeometry g =
      conv2d_geometry(op, shape_of(x), shape_of(w), stride, padding, dilation, groups);
  check_bias(op, bias, g.K);
  return run(op, {{&x, "input"}, {&w, "weight"}, {bias ? &*bias : nullptr, "bias"}},
             g.output_shape(),
             [&](const auto& p, auto* y) { cpu::conv2d_forward(g, p[0], p[1], p[2], y); });
}

py::array conv2d_backward_input(const py::array& dy, const py::array& w,
                                const py::object& input_shape, const py::object& stride,
                                const py::object& padding, const py::object& dilation,
                                int64_t groups) {
  const char* op = "conv2d_backward_input";
  const ConvGeometry g = conv2d_geometry(op, to_shape(input_shape, op, "input_shape"),
                                         shape_of(w), stride, padding, dilation, groups);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.output_shape());
  return run(op, {{&dy, "grad_output"}, {&w, "weight"}}, g.input_shape(),
             [&](const auto& p, auto* dx) { cpu::conv2d_backward_input(g, p[0], p[1], dx); });
}

py::array conv2d_backward_weight(const py::array& dy, const py::array& x,
                                 const py::object& weight_shape, const py::object& stride,
                                 const py::object& padding, const py::object& dilation,
                                 int64_t groups) {
  const char* op = "conv2d_backward_weight";
  const ConvGeometry g = conv2d_geometry(
      op, shape_of(x), to_shape(weight_shape, op, "weight_shape"), stride, padding, dilation,
      groups);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.output_shape());
  return run(op, {{&dy, "grad_output"}, {&x, "input"}}, g.weight_shape(),
             [&](const auto& p, auto* dw) { cpu::conv2d_backward_weight(g, p[0], p[1], dw); });
}

py::array conv_backward_bias(const char* op, const py::array& dy) {
  check_ndim(dy, {4}, op, "grad_output");
  const Shape s = shape_of(dy);
  return run(op, {{&dy, "grad_output"}}, {s[1]}, [&](const auto& p, auto* db) {
    cpu::channel_sum(s[0], s[1], s[2] * s[3], p[0], db);
  });
}

py::array conv_transpose2d_forward(const py::array& x, const py::array& w, const OptArray& bias,
                                   const py::object& stride, const py::object& padding,
                                   const py::object& output_padding, int64_t groups,
                                   const py::object& dilation) {
  const char* op = "conv_transpose2d";
  const ConvGeometry g = transpose_geometry(op, shape_of(x), shape_of(w), stride, padding,
                                            output_padding, groups, dilation);
  check_bias(op, bias, g.C);
  return run(op, {{&x, "input"}, {&w, "weight"}, {bias ? &*bias : nullptr, "bias"}},
             g.input_shape(), [&](const auto& p, auto* y) {
               cpu::conv2d_backward_input(g, p[0], p[1], y);
               if (p[2] != nullptr) cpu::add_channel_bias(g.N, g.C, g.H * g.W, p[2], y);
             });
}

py::array conv_transpose2d_backward_input(const py::array& dy, const py::array& w,
                                          const py::object& input_shape,
                                          const py::object& stride, const py::object& padding,
                                          const py::object& output_padding, int64_t groups,
                                          const py::object& dilation) {
  const char* op = "conv_transpose2d_backward_input";
  const ConvGeometry g = transpose_geometry(op, to_shape(input_shape, op, "input_shape"),
                                            shape_of(w), stride, padding, output_padding, groups,
                                            dilation);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.input_shape());
  return run(op, {{&dy, "grad_output"}, {&w, "weight"}}, g.output_shape(),
             [&](const auto& p, auto* dx) {
               using T = std::remove_pointer_t<decltype(dx)>;
               cpu::conv2d_forward(g, p[0], p[1], static_cast<const T*>(nullptr), dx);
             });
}

py::array conv_transpose2d_backward_weight(const py::array& dy, const py::array& x,
                                           const py::object& weight_shape,
                                           const py::object& stride, const py::object& padding,
                                           const py::object& output_padding, int64_t groups,
                                           const py::object& dilation) {
  const char* op = "conv_transpose2d_backward_weight";
  const ConvGeometry g = transpose_geometry(op, shape_of(x),
                                            to_shape(weight_shape, op, "weight_shape"), stride,
                                            padding, output_padding, groups, dilation);
  cpu::check_shape(op, "grad_output", shape_of(dy), g.input_shape());
  // conv2d's weight gradient with x in the role of dy and dy in the role of x.
  return run(op, {{&dy, "grad_output"}, {&x, "input"}}, g.weight_shape(),
             [&](const auto& p, auto* dw) { cpu::conv2d_backward_weight(g, p[1], p[0], dw); });
}

}  // namespace

void bind_conv(py::module_& m) {
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
