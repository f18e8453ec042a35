// kiln.kernels linear and matmul on NumPy arrays (float32 or float64, C-contiguous).
#include "bindings/families.h"
#include "bindings/linear_dims.h"
#include "bindings/marshal.h"
#include "cpu/linear.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::out;

}  // namespace

void bind_linear(py::module_& m) {
  m.def(
      "linear_forward",
      [](const py::array& x, const py::array& w, const OptArray& bias) {
        const char* op = "linear";
        const LinearDims d = linear_dims(shape_of(x), shape_of(w), op);
        if (bias) check_linear_bias(shape_of(*bias), d, shape_of(w), op);
        return marshal::call<float, double>(
            op, in(x, "input"), in(w, "weight"), opt(bias, "bias"), out(d.out),
            [&](auto* x, auto* w, auto* b, auto* y) { linear_forward(x, w, b, y, d.M, d.K, d.N); });
      },
      py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
      "output = input @ weight.T + bias. input: (*, in_features), weight: (out_features, "
      "in_features), bias: (out_features,) or None; output: (*, out_features).");
  m.def(
      "linear_backward",
      [](const py::array& dy, const py::array& x, const py::array& w, bool input_grad,
         bool weight_grad, bool bias_grad) {
        const char* op = "linear_backward";
        const LinearDims d = linear_dims(shape_of(x), shape_of(w), op);
        check_grad_shape(shape_of(dy), d.out, op);
        return marshal::call<float, double>(
            op, in(x, "input"), in(dy, "grad_output"), in(w, "weight"),
            out(shape_of(x), input_grad), out(shape_of(w), weight_grad), out({d.N}, bias_grad),
            [&](auto* x, auto* dy, auto* w, auto* dx, auto* dw, auto* db) {
              linear_backward(dy, x, w, dx, dw, db, d.M, d.K, d.N);
            });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("input_grad") = true,
      py::arg("weight_grad") = true, py::arg("bias_grad") = true,
      "Returns (grad_input, grad_weight, grad_bias), each None when not requested. "
      "grad_output: (*, out_features); grad_input like input, grad_weight like weight, "
      "grad_bias: (out_features,).");
  m.def(
      "matmul_forward",
      [](const py::array& a, const py::array& b) {
        const char* op = "matmul";
        const MatmulDims d = matmul_dims(shape_of(a), shape_of(b), op);
        return marshal::call<float, double>(
            op, in(a, "a"), in(b, "b"), out(d.out),
            [&](auto* a, auto* b, auto* c) { matmul_forward(a, b, c, d.bb, d.M, d.K, d.N); });
      },
      py::arg("a"), py::arg("b"),
      "a @ b with NumPy's rules: (..., M, K) @ (..., K, N) -> (..., M, N), batch dimensions "
      "broadcast; a 1-D a is a row and a 1-D b a column, whose unit dimension is dropped.");
  m.def(
      "matmul_backward",
      [](const py::array& dc, const py::array& a, const py::array& b, bool a_grad, bool b_grad) {
        const char* op = "matmul_backward";
        const MatmulDims d = matmul_dims(shape_of(a), shape_of(b), op);
        check_grad_shape(shape_of(dc), d.out, op);
        return marshal::call<float, double>(
            op, in(a, "a"), in(dc, "grad_output"), in(b, "b"), out(shape_of(a), a_grad),
            out(shape_of(b), b_grad), [&](auto* a, auto* dc, auto* b, auto* da, auto* db) {
              matmul_backward(dc, a, b, da, db, d.bb, d.M, d.K, d.N);
            });
      },
      py::arg("grad_output"), py::arg("a"), py::arg("b"), py::arg("a_grad") = true,
      py::arg("b_grad") = true,
      "Returns (grad_a, grad_b) of a @ b, each None when not requested; a gradient flowing to a "
      "broadcast batch dimension is summed.");
}

}  // namespace kiln::bind
