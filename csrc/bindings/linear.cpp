// kiln.kernels linear and matmul on NumPy arrays (float32 or float64, C-contiguous).
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "cpu/linear.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::out;

struct LinearDims {
  int64_t M, K, N;
  Shape out;
};

LinearDims linear_dims(const py::array& x, const py::array& w, const char* op) {
  if (x.ndim() < 1)
    fail<ValueError>(op, ": input must have at least 1 dimension, got shape ",
                     shape_str(shape_of(x)));
  check_ndim(w, {2}, op, "weight");
  const Shape xs = shape_of(x);
  LinearDims d;
  d.K = xs.back();
  d.N = w.shape(0);
  if (w.shape(1) != d.K)
    fail<ValueError>(op, ": input ", shape_str(xs), " has ", d.K, " features but weight ",
                     shape_str(shape_of(w)), " expects ", w.shape(1));
  d.M = 1;
  for (size_t i = 0; i + 1 < xs.size(); ++i) d.M *= xs[i];
  d.out = xs;
  d.out.back() = d.N;
  return d;
}

struct MatmulDims {
  BatchBroadcast bb;
  int64_t M, K, N;
  Shape out;
};

// NumPy's matmul shapes: a 1-D left operand is a row (K,) -> (1, K), a 1-D right
// operand a column (K,) -> (K, 1), and those unit dimensions leave the result.
MatmulDims matmul_dims(const py::array& a, const py::array& b, const char* op) {
  if (a.ndim() < 1 || b.ndim() < 1)
    fail<ValueError>(op, ": both arguments need at least 1 dimension, got shapes ",
                     shape_str(shape_of(a)), " and ", shape_str(shape_of(b)));
  const Shape as = shape_of(a), bs = shape_of(b);
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  MatmulDims d;
  d.M = a_vec ? 1 : as[as.size() - 2];
  d.K = as.back();
  const int64_t kb = b_vec ? bs[0] : bs[bs.size() - 2];
  d.N = b_vec ? 1 : bs.back();
  if (kb != d.K)
    fail<ValueError>(op, ": shapes ", shape_str(as), " and ", shape_str(bs),
                     " cannot be multiplied (", d.K, " != ", kb, ")");
  const Shape a_batch(as.begin(), as.end() - (a_vec ? 1 : 2));
  const Shape b_batch(bs.begin(), bs.end() - (b_vec ? 1 : 2));
  d.bb = broadcast_batches(a_batch, b_batch, op);
  d.out = d.bb.batch;
  if (!a_vec) d.out.push_back(d.M);
  if (!b_vec) d.out.push_back(d.N);
  return d;
}

void check_grad_shape(const py::array& g, const Shape& want, const char* op) {
  if (shape_of(g) != want)
    fail<ValueError>(op, ": grad_output has shape ", shape_str(shape_of(g)), " but the output has ",
                     shape_str(want));
}

}  // namespace

void bind_linear(py::module_& m) {
  m.def(
      "linear_forward",
      [](const py::array& x, const py::array& w, const OptArray& bias) {
        const char* op = "linear";
        const LinearDims d = linear_dims(x, w, op);
        if (bias && (bias->ndim() != 1 || bias->shape(0) != d.N))
          fail<ValueError>(op, ": bias has shape ", shape_str(shape_of(*bias)), ", expected (",
                           d.N, ",) for weight ", shape_str(shape_of(w)));
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
        const LinearDims d = linear_dims(x, w, op);
        check_grad_shape(dy, d.out, op);
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
        const MatmulDims d = matmul_dims(a, b, op);
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
        const MatmulDims d = matmul_dims(a, b, op);
        check_grad_shape(dc, d.out, op);
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
