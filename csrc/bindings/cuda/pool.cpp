// kiln._C_cuda pooling: the twins of bindings/pool.cpp on CUDA arrays (same names,
// arguments, checks and results; cuda/pool.h).
#include <optional>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/pool_args.h"
#include "cuda/pool.h"

namespace kiln::cuda::bind {
namespace {

using kiln::bind::int_pair;
using kiln::bind::make_window;

ArrayPtr index_output(const Shape& shape, const DeviceView& like) {
  return DeviceArray::empty(shape, Dtype::Int64, like.device);
}

py::object max_pool2d_forward_py(py::handle input, py::handle kernel_size, py::handle stride,
                                 py::handle padding, py::handle dilation, bool ceil_mode,
                                 bool return_indices) {
  const char* op = "max_pool2d";
  const DeviceView x = view_of(input, op, "input");
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode, dilation);
  const Pool2dSizes s = pool2d_sizes(op, x.shape, w);
  const Shape out_shape = pool2d_output_shape(x.shape, s.out_h, s.out_w);
  ArrayPtr y = output(out_shape, x);
  ArrayPtr indices = return_indices ? index_output(out_shape, x) : nullptr;
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::max_pool2d_forward(x.ptr<T>(), y->ptr<T>(), ptr_or_null<int64_t>(indices), s, w);
  });
  if (!return_indices) return py::cast(y);
  return py::make_tuple(y, indices);
}

py::object max_pool2d_backward_py(py::handle grad_output, py::handle indices_obj,
                                  const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  const DeviceView dy = view_of(grad_output, op, "grad_output");
  const DeviceView indices = operand(indices_obj, dy, Dtype::Int64, op, "indices");
  const Pool2dSizes s = kiln::bind::max_pool2d_grad_sizes(op, dy.shape, indices.shape,
                                                          input_shape);
  ArrayPtr dx = output(input_shape, dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::max_pool2d_backward(op, dy.ptr<T>(), indices.ptr<int64_t>(), dx->ptr<T>(), s);
  });
  return py::cast(dx);
}

py::object avg_pool2d_forward_py(py::handle input, py::handle kernel_size, py::handle stride,
                                 py::handle padding, bool ceil_mode, bool count_include_pad,
                                 std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  const DeviceView x = view_of(input, op, "input");
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode);
  check_divisor_override(op, divisor_override);
  const Pool2dSizes s = pool2d_sizes(op, x.shape, w);
  ArrayPtr y = output(pool2d_output_shape(x.shape, s.out_h, s.out_w), x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::avg_pool2d_forward(x.ptr<T>(), y->ptr<T>(), s, w, count_include_pad, divisor_override);
  });
  return py::cast(y);
}

py::object avg_pool2d_backward_py(py::handle grad_output, const Shape& input_shape,
                                  py::handle kernel_size, py::handle stride, py::handle padding,
                                  bool ceil_mode, bool count_include_pad,
                                  std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  const DeviceView dy = view_of(grad_output, op, "grad_output");
  const Pool2dWindow w = make_window(op, kernel_size, stride, padding, ceil_mode);
  check_divisor_override(op, divisor_override);
  const Pool2dSizes s = pool2d_sizes(op, input_shape, w);
  check_pool2d_grad(op, dy.shape, input_shape, s);
  ArrayPtr dx = output(input_shape, dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::avg_pool2d_backward(dy.ptr<T>(), dx->ptr<T>(), s, w, count_include_pad, divisor_override);
  });
  return py::cast(dx);
}

py::object adaptive_avg_pool2d_forward_py(py::handle input, py::handle output_size) {
  const char* op = "adaptive_avg_pool2d";
  const DeviceView x = view_of(input, op, "input");
  const Pool2dSizes s = kiln::bind::adaptive_sizes(op, x.shape, output_size);
  ArrayPtr y = output(pool2d_output_shape(x.shape, s.out_h, s.out_w), x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::adaptive_avg_pool2d_forward(x.ptr<T>(), y->ptr<T>(), s);
  });
  return py::cast(y);
}

py::object adaptive_avg_pool2d_backward_py(py::handle grad_output, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  const DeviceView dy = view_of(grad_output, op, "grad_output");
  const Pool2dSizes s = pool2d_grad_sizes(op, dy.shape, input_shape);
  ArrayPtr dx = output(input_shape, dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::adaptive_avg_pool2d_backward(dy.ptr<T>(), dx->ptr<T>(), s);
  });
  return py::cast(dx);
}

py::object adaptive_max_pool2d_forward_py(py::handle input, py::handle output_size) {
  const char* op = "adaptive_max_pool2d";
  const DeviceView x = view_of(input, op, "input");
  const Pool2dSizes s = kiln::bind::adaptive_sizes(op, x.shape, output_size);
  const Shape out_shape = pool2d_output_shape(x.shape, s.out_h, s.out_w);
  ArrayPtr y = output(out_shape, x), indices = index_output(out_shape, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::adaptive_max_pool2d_forward(x.ptr<T>(), y->ptr<T>(), indices->ptr<int64_t>(), s);
  });
  return py::make_tuple(y, indices);
}

py::object fractional_max_pool2d_forward_py(py::handle input, py::handle kernel_size,
                                            py::handle output_size, py::handle samples_obj) {
  const char* op = "fractional_max_pool2d";
  const DeviceView x = view_of(input, op, "input");
  const DeviceView u = operand(samples_obj, x, op, "_random_samples");
  const auto k = int_pair(kernel_size, op, "kernel_size");
  const auto o = int_pair(output_size, op, "output_size");
  const Pool2dSizes s = fractional_max_pool2d_sizes(op, x.shape, k[0], k[1], o[0], o[1], u.shape);
  const Shape out_shape = pool2d_output_shape(x.shape, s.out_h, s.out_w);
  ArrayPtr y = output(out_shape, x), indices = index_output(out_shape, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::fractional_max_pool2d_forward(x.ptr<T>(), u.ptr<T>(), y->ptr<T>(),
                                        indices->ptr<int64_t>(), s, k[0], k[1]);
  });
  return py::make_tuple(y, indices);
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("ceil_mode") = false, py::arg("return_indices") = true,
        "2-D max pooling on the GPU: returns (output, indices), or output alone when "
        "return_indices=False; indices int64, the flat h*W + w position of each maximum.");
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("grad_output"),
        py::arg("indices"), py::arg("input_shape"),
        "Gradient of max_pool2d (and adaptive/fractional max pooling) on the GPU: grad_output "
        "scattered to the argmax positions -> grad_input of input_shape.");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        "2-D average pooling on the GPU: input (N, C, H, W) or (C, H, W) -> (N, C, OH, OW).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        "Gradient of avg_pool2d on the GPU -> grad_input of input_shape.");
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"), "Adaptive 2-D average pooling on the GPU -> (N, C, OH, OW).");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py,
        py::arg("grad_output"), py::arg("input_shape"),
        "Gradient of adaptive_avg_pool2d on the GPU -> grad_input of input_shape.");
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"),
        "Adaptive 2-D max pooling on the GPU: returns (output, indices).");
  m.def("fractional_max_pool2d_forward", &fractional_max_pool2d_forward_py, py::arg("input"),
        py::arg("kernel_size"), py::arg("output_size"), py::arg("samples"),
        "Fractional 2-D max pooling on the GPU: returns (output, indices); samples (N', C, 2) "
        "in [0, 1) place the windows as on the CPU.");
}

}  // namespace kiln::cuda::bind
