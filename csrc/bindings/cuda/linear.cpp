// kiln._C_cuda linear and matmul: the twins of bindings/linear.cpp on CUDA arrays,
// same names, arguments, shapes checks and results (cuda/linear.h).
#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/linear_dims.h"
#include "cuda/linear.h"

namespace kiln::cuda::bind {
namespace {

using kiln::bind::check_grad_shape;
using kiln::bind::LinearDims;
using kiln::bind::MatmulDims;

py::object linear_forward_py(py::handle x_obj, py::handle w_obj, py::handle bias_obj) {
  const char* op = "linear";
  const DeviceView x = view_of(x_obj, op, "input");
  const DeviceView w = operand(w_obj, x, op, "weight");
  const auto bias = optional_operand(bias_obj, x, op, "bias");
  const LinearDims d = kiln::bind::linear_dims(x.shape, w.shape, op);
  if (bias) kiln::bind::check_linear_bias(bias->shape, d, w.shape, op);
  ArrayPtr y = output(d.out, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::linear_forward(x.ptr<T>(), w.ptr<T>(), ptr_or_null<T>(bias), y->ptr<T>(), d.M, d.K, d.N);
  });
  return py::cast(y);
}

py::object linear_backward_py(py::handle dy_obj, py::handle x_obj, py::handle w_obj,
                              bool input_grad, bool weight_grad, bool bias_grad) {
  const char* op = "linear_backward";
  const DeviceView x = view_of(x_obj, op, "input");
  const DeviceView dy = operand(dy_obj, x, op, "grad_output");
  const DeviceView w = operand(w_obj, x, op, "weight");
  const LinearDims d = kiln::bind::linear_dims(x.shape, w.shape, op);
  check_grad_shape(dy.shape, d.out, op);
  ArrayPtr dx = output(x.shape, x, input_grad), dw = output(w.shape, x, weight_grad),
           db = output({d.N}, x, bias_grad);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::linear_backward(dy.ptr<T>(), x.ptr<T>(), w.ptr<T>(), ptr_or_null<T>(dx),
                          ptr_or_null<T>(dw), ptr_or_null<T>(db), d.M, d.K, d.N);
  });
  return py::make_tuple(or_none(dx), or_none(dw), or_none(db));
}

py::object matmul_forward_py(py::handle a_obj, py::handle b_obj) {
  const char* op = "matmul";
  const DeviceView a = view_of(a_obj, op, "a");
  const DeviceView b = operand(b_obj, a, op, "b");
  const MatmulDims d = kiln::bind::matmul_dims(a.shape, b.shape, op);
  ArrayPtr c = output(d.out, a);
  launch(a, op, "a", [&](auto zero) {
    using T = decltype(zero);
    cuda::matmul_forward(a.ptr<T>(), b.ptr<T>(), c->ptr<T>(), d.bb, d.M, d.K, d.N);
  });
  return py::cast(c);
}

py::object matmul_backward_py(py::handle dc_obj, py::handle a_obj, py::handle b_obj, bool a_grad,
                              bool b_grad) {
  const char* op = "matmul_backward";
  const DeviceView a = view_of(a_obj, op, "a");
  const DeviceView dc = operand(dc_obj, a, op, "grad_output");
  const DeviceView b = operand(b_obj, a, op, "b");
  const MatmulDims d = kiln::bind::matmul_dims(a.shape, b.shape, op);
  check_grad_shape(dc.shape, d.out, op);
  ArrayPtr da = output(a.shape, a, a_grad), db = output(b.shape, a, b_grad);
  launch(a, op, "a", [&](auto zero) {
    using T = decltype(zero);
    cuda::matmul_backward(dc.ptr<T>(), a.ptr<T>(), b.ptr<T>(), ptr_or_null<T>(da),
                          ptr_or_null<T>(db), d.bb, d.M, d.K, d.N);
  });
  return py::make_tuple(or_none(da), or_none(db));
}

}  // namespace

void bind_linear(py::module_& m) {
  m.def("linear_forward", &linear_forward_py, py::arg("input"), py::arg("weight"),
        py::arg("bias") = py::none(),
        "output = input @ weight.T + bias on the GPU. input: (*, in_features), weight: "
        "(out_features, in_features), bias: (out_features,) or None; output: (*, out_features).");
  m.def("linear_backward", &linear_backward_py, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("input_grad") = true, py::arg("weight_grad") = true,
        py::arg("bias_grad") = true,
        "Returns (grad_input, grad_weight, grad_bias), each None when not requested. "
        "grad_output: (*, out_features); grad_input like input, grad_weight like weight, "
        "grad_bias: (out_features,).");
  m.def("matmul_forward", &matmul_forward_py, py::arg("a"), py::arg("b"),
        "a @ b with NumPy's rules on the GPU: (..., M, K) @ (..., K, N) -> (..., M, N), batch "
        "dimensions broadcast; a 1-D a is a row and a 1-D b a column, whose unit dimension is "
        "dropped.");
  m.def("matmul_backward", &matmul_backward_py, py::arg("grad_output"), py::arg("a"),
        py::arg("b"), py::arg("a_grad") = true, py::arg("b_grad") = true,
        "Returns (grad_a, grad_b) of a @ b, each None when not requested; a gradient flowing to "
        "a broadcast batch dimension is summed.");
}

}  // namespace kiln::cuda::bind
