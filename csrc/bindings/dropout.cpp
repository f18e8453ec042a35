// Dropout kernels on NumPy arrays, exposed as kiln.kernels.dropout_*.
#include "bindings/dropout_checks.h"
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "cpu/dropout.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::out;

// Draws a mask of `mask_shape` (a leading part of input's shape; each entry
// covers the remaining dimensions) and applies it.
py::object dropout_apply(const char* op, const py::array& input, const Shape& mask_shape,
                         double p, uint64_t seed, uint64_t offset) {
  check_dropout_p(op, p);  // the kernel's own check would name dropout2d's p "dropout"
  int64_t groups = 1;
  for (int64_t d : mask_shape) groups *= d;
  const int64_t inner = dropout::inner_of(groups, static_cast<int64_t>(input.size()));
  return marshal::call<float, double>(
      op, in(input, "input"), out(shape_of(input)), out<uint8_t>(mask_shape),
      [&](auto* x, auto* y, uint8_t* mask) {
        dropout_forward(x, y, mask, groups, inner, p, seed, offset);
      });
}

py::object dropout_forward_py(const py::array& input, double p, uint64_t seed, uint64_t offset) {
  return dropout_apply("dropout", input, shape_of(input), p, seed, offset);
}

py::object dropout2d_forward_py(const py::array& input, double p, uint64_t seed,
                                uint64_t offset) {
  return dropout_apply("dropout2d", input, dropout::dropout2d_mask_shape(shape_of(input)), p, seed,
                       offset);
}

py::object dropout_backward_py(const py::array& grad_output, const py::array& mask, double p) {
  const char* op = "dropout_backward";  // the kernel checks p
  const Shape g_shape = shape_of(grad_output), m_shape = shape_of(mask);
  dropout::check_mask_shape(g_shape, m_shape, op);
  const int64_t groups = static_cast<int64_t>(mask.size());
  const int64_t inner = dropout::inner_of(groups, static_cast<int64_t>(grad_output.size()));
  return marshal::call<float, double>(
      op, in(grad_output, "grad_output"), in<uint8_t>(mask, "mask"), out(g_shape),
      [&](auto* dy, const uint8_t* mask, auto* dx) {
        dropout_backward(dy, mask, dx, groups, inner, p);
      });
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward_py, py::arg("input"), py::arg("p"), py::arg("seed"),
        py::arg("offset"),
        R"doc(Inverted dropout: returns (output, mask).

input: any shape, float32 or float64. Each element is kept with probability
1 - p (0 <= p <= 1) and scaled by 1/(1 - p); mask (uint8, input's shape) is 1
where kept. Element i draws lane i % 4 of Philox-4x32-10 at counter offset + i // 4
under seed, so the call consumes ceil(input.size / 4) counters and its result
does not depend on the thread count.)doc");
  m.def("dropout2d_forward", &dropout2d_forward_py, py::arg("input"), py::arg("p"),
        py::arg("seed"), py::arg("offset"),
        R"doc(Channel dropout (PyTorch's feature dropout): returns (output, mask).

input (N, C, *): whole channels input[n, c] are kept with probability 1 - p and
scaled by 1/(1 - p). mask (uint8) has shape (N, C) and consumes ceil(N*C / 4)
Philox counters from offset.)doc");
  m.def("dropout_backward", &dropout_backward_py, py::arg("grad_output"), py::arg("mask"),
        py::arg("p"),
        R"doc(Gradient of dropout / dropout2d: grad_output * mask / (1 - p).

mask from the forward: grad_output's shape, or its leading (N, C) for dropout2d.)doc");
}

}  // namespace kiln::bind
