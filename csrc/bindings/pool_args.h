// The windows and sizes of the pooling bindings from their Python arguments,
// shared by the CPU (bindings/pool.cpp) and CUDA (bindings/cuda/pool.cpp) bindings
// so both parse and check alike.
#pragma once

#include "bindings/args.h"
#include "cpu/pool.h"

namespace kiln::bind {

// The window of avg_pool2d (dilation 1) or, given `dilation`, of max_pool2d.
inline Pool2dWindow make_window(const char* op, py::handle kernel_size, py::handle stride,
                                py::handle padding, bool ceil_mode, py::handle dilation = {}) {
  Pool2dWindow w;
  const auto k = int_pair(kernel_size, op, "kernel_size");
  // stride=None (or an empty sequence, as PyTorch allows) means stride = kernel_size.
  const bool default_stride = stride.is_none() || (py::isinstance<py::sequence>(stride) &&
                                                   py::len(stride) == 0);
  const auto s = default_stride ? k : int_pair(stride, op, "stride");
  const auto p = int_pair(padding, op, "padding");
  for (int i = 0; i < 2; ++i) {
    w.kernel[i] = k[i];
    w.stride[i] = s[i];
    w.padding[i] = p[i];
  }
  if (dilation) {
    const auto d = int_pair(dilation, op, "dilation");
    w.dilation[0] = d[0];
    w.dilation[1] = d[1];
  }
  w.ceil_mode = ceil_mode;
  return w;
}

// Adaptive output_size: int, or pair whose None entries keep the input's size.
inline Pool2dSizes adaptive_sizes(const char* op, const Shape& in_shape, py::handle output_size) {
  std::array<int64_t, 2> keep{in_shape.size() >= 2 ? in_shape[in_shape.size() - 2] : 0,
                              in_shape.size() >= 2 ? in_shape[in_shape.size() - 1] : 0};
  const auto o = int_pair(output_size, op, "output_size", &keep);
  return adaptive_pool2d_sizes(op, in_shape, o[0], o[1]);
}

// max_pool2d_backward's sizes: indices shaped like grad_output, which matches input_shape.
inline Pool2dSizes max_pool2d_grad_sizes(const char* op, const Shape& grad_output,
                                         const Shape& indices, const Shape& input_shape) {
  if (indices != grad_output)
    fail(op, ": indices ", shape_str(indices), " must have the shape of grad_output ",
         shape_str(grad_output));
  return pool2d_grad_sizes(op, grad_output, input_shape);
}

}  // namespace kiln::bind
