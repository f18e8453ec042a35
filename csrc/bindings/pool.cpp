// Pooling kernels on NumPy arrays: max_pool2d, avg_pool2d, adaptive_avg_pool2d,
// adaptive_max_pool2d (forward and backward), fractional_max_pool2d (forward; its
// backward is max_pool2d_backward), exposed as kiln.kernels.*.
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "bindings/pool_args.h"
#include "cpu/pool.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::out;

py::object max_pool2d_forward_py(const py::array& input, py::handle kernel_size,
                                 py::handle stride, py::handle padding, py::handle dilation,
                                 bool ceil_mode, bool return_indices) {
  const char* op = "max_pool2d";
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode, dilation);
  const Shape in_shape = shape_of(input);
  const Pool2dSizes s = pool2d_sizes(op, in_shape, w);
  const Shape out_shape = pool2d_output_shape(in_shape, s.out_h, s.out_w);
  // Without indices (no backward to feed) the kernel is several times cheaper.
  if (!return_indices)
    return marshal::call<float, double>(op, in(input, "input"), out(out_shape),
                                        [&](auto* x, auto* y) {
                                          max_pool2d_forward(x, y, nullptr, s, w);
                                        });
  return marshal::call<float, double>(
      op, in(input, "input"), out(out_shape), out<int64_t>(out_shape),
      [&](auto* x, auto* y, int64_t* indices) { max_pool2d_forward(x, y, indices, s, w); });
}

py::object max_pool2d_backward_py(const py::array& grad_output, const py::array& indices,
                                  const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  const Pool2dSizes s =
      max_pool2d_grad_sizes(op, shape_of(grad_output), shape_of(indices), input_shape);
  return marshal::call<float, double>(
      op, in(grad_output, "grad_output"), in<int64_t>(indices, "indices"), out(input_shape),
      [&](auto* dy, const int64_t* indices, auto* dx) {
        max_pool2d_backward(op, dy, indices, dx, s);
      });
}

py::object avg_pool2d_forward_py(const py::array& input, py::handle kernel_size,
                                 py::handle stride, py::handle padding, bool ceil_mode,
                                 bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode);
  check_divisor_override(op, divisor_override);
  const Shape in_shape = shape_of(input);
  const Pool2dSizes s = pool2d_sizes(op, in_shape, w);
  return marshal::call<float, double>(
      op, in(input, "input"), out(pool2d_output_shape(in_shape, s.out_h, s.out_w)),
      [&](auto* x, auto* y) {
        avg_pool2d_forward(x, y, s, w, count_include_pad, divisor_override);
      });
}

py::object avg_pool2d_backward_py(const py::array& grad_output, const Shape& input_shape,
                                  py::handle kernel_size, py::handle stride, py::handle padding,
                                  bool ceil_mode, bool count_include_pad,
                                  std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode);
  check_divisor_override(op, divisor_override);
  const Pool2dSizes s = pool2d_sizes(op, input_shape, w);
  check_pool2d_grad(op, shape_of(grad_output), input_shape, s);
  return marshal::call<float, double>(
      op, in(grad_output, "grad_output"), out(input_shape), [&](auto* dy, auto* dx) {
        avg_pool2d_backward(dy, dx, s, w, count_include_pad, divisor_override);
      });
}

py::object adaptive_avg_pool2d_forward_py(const py::array& input, py::handle output_size) {
  const char* op = "adaptive_avg_pool2d";
  const Shape in_shape = shape_of(input);
  const Pool2dSizes s = adaptive_sizes(op, in_shape, output_size);
  return marshal::call<float, double>(
      op, in(input, "input"), out(pool2d_output_shape(in_shape, s.out_h, s.out_w)),
      [&](auto* x, auto* y) { adaptive_avg_pool2d_forward(x, y, s); });
}

py::object adaptive_avg_pool2d_backward_py(const py::array& grad_output,
                                           const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  const Pool2dSizes s = pool2d_grad_sizes(op, shape_of(grad_output), input_shape);
  return marshal::call<float, double>(
      op, in(grad_output, "grad_output"), out(input_shape),
      [&](auto* dy, auto* dx) { adaptive_avg_pool2d_backward(dy, dx, s); });
}

py::object adaptive_max_pool2d_forward_py(const py::array& input, py::handle output_size) {
  const char* op = "adaptive_max_pool2d";
  const Shape in_shape = shape_of(input);
  const Pool2dSizes s = adaptive_sizes(op, in_shape, output_size);
  const Shape out_shape = pool2d_output_shape(in_shape, s.out_h, s.out_w);
  return marshal::call<float, double>(
      op, in(input, "input"), out(out_shape), out<int64_t>(out_shape),
      [&](auto* x, auto* y, int64_t* indices) { adaptive_max_pool2d_forward(x, y, indices, s); });
}

py::object fractional_max_pool2d_forward_py(const py::array& input, py::handle kernel_size,
                                            py::handle output_size, const py::array& samples) {
  const char* op = "fractional_max_pool2d";
  const auto k = int_pair(kernel_size, op, "kernel_size");
  const auto o = int_pair(output_size, op, "output_size");
  const Shape in_shape = shape_of(input);
  const Pool2dSizes s =
      fractional_max_pool2d_sizes(op, in_shape, k[0], k[1], o[0], o[1], shape_of(samples));
  const Shape out_shape = pool2d_output_shape(in_shape, s.out_h, s.out_w);
  return marshal::call<float, double>(
      op, in(input, "input"), in(samples, "_random_samples"), out(out_shape),
      out<int64_t>(out_shape), [&](auto* x, auto* u, auto* y, int64_t* indices) {
        fractional_max_pool2d_forward(x, u, y, indices, s, k[0], k[1]);
      });
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("ceil_mode") = false, py::arg("return_indices") = true,
        R"doc(2-D max pooling: returns (output, indices), or output alone when return_indices=False.

input (N, C, H, W) or (C, H, W), float32 or float64, C-contiguous. kernel_size,
stride (None: kernel_size), padding, dilation: int or (h, w); padding at most
half the kernel. output (N, C, OH, OW) with OH = floor((H + 2*pad - dilation*(k-1)
- 1 [+ stride-1 if ceil_mode]) / stride) + 1; indices int64 of the same shape,
the flat position h*W + w of each maximum in its input plane (-1 for a window
lying wholly in padding). Without indices (no backward to feed) the kernel
is cheaper.)doc");
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("grad_output"),
        py::arg("indices"), py::arg("input_shape"),
        R"doc(Gradient of max_pool2d (and adaptive_max_pool2d) with respect to its input.

grad_output (N, C, OH, OW) and indices (int64, same shape) from the forward;
input_shape (N, C, H, W) or (C, H, W). Returns grad_input of input_shape:
zeros, plus grad_output scattered to the argmax positions.)doc");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        R"doc(2-D average pooling.

input (N, C, H, W) or (C, H, W), float32 or float64. kernel_size, stride (None:
kernel_size), padding: int or (h, w). Returns output (N, C, OH, OW) (sizes as
max_pool2d with dilation 1). Each window sum is divided by divisor_override if
given (non-zero), else by the window size clipped to the padded input
(count_include_pad=True) or to the input (False).)doc");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        R"doc(Gradient of avg_pool2d with respect to its input.

grad_output (N, C, OH, OW); input_shape and the pooling arguments as given to
avg_pool2d_forward. Returns grad_input of input_shape.)doc");
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"),
        R"doc(Adaptive 2-D average pooling to output_size (int or (oh, ow); None keeps that size).

input (N, C, H, W) or (C, H, W). Output row i averages input rows
[floor(i*H/OH), ceil((i+1)*H/OH)), columns alike. Returns (N, C, OH, OW).)doc");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py,
        py::arg("grad_output"), py::arg("input_shape"),
        R"doc(Gradient of adaptive_avg_pool2d: grad_output (N, C, OH, OW) -> grad_input of input_shape.)doc");
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"),
        R"doc(Adaptive 2-D max pooling: returns (output, indices).

Windows as adaptive_avg_pool2d; indices int64 hold the flat h*W + w position of
each maximum. Its backward is max_pool2d_backward(grad_output, indices, input_shape).)doc");
  m.def("fractional_max_pool2d_forward", &fractional_max_pool2d_forward_py, py::arg("input"),
        py::arg("kernel_size"), py::arg("output_size"), py::arg("samples"),
        R"doc(Fractional 2-D max pooling (Graham 2014, as PyTorch): returns (output, indices).

input (N, C, H, W) or (C, H, W), float32 or float64; kernel_size and
output_size: int or (h, w), output_size + kernel_size - 1 <= (H, W); samples
(N' >= N (1 unbatched), C, 2) of input's dtype, u in [0, 1): samples[n, c, 0]
places plane (n, c)'s windows along W, [.., 1] along H, window i starting at
int((i + u) * alpha) - int(u * alpha), alpha = (in - k) / (out - 1), the last at
in - k. indices int64 hold each maximum's flat h*W + w position. Its backward
is max_pool2d_backward(grad_output, indices, input_shape).)doc");
}

}  // namespace kiln::bind
