// The geometry of conv2d, conv_transpose2d, unfold and fold from their Python
// arguments (ints or pairs, parsed by args.h), checked as PyTorch does: shared by
// the CPU (bindings/conv.cpp) and CUDA (bindings/cuda/conv.cpp) bindings.
#pragma once

#include "bindings/args.h"
#include "cpu/conv.h"

namespace kiln::bind {

using cpu::ConvGeometry;

inline ConvGeometry conv2d_geometry(const char* op, const Shape& input, const Shape& weight,
                                    py::handle stride, py::handle padding, py::handle dilation,
                                    int64_t groups) {
  return cpu::conv2d_geometry(op, input, weight, int_pair(stride, op, "stride"),
                              int_pair(padding, op, "padding"),
                              int_pair(dilation, op, "dilation"), groups);
}

inline ConvGeometry transpose_geometry(const char* op, const Shape& input, const Shape& weight,
                                       py::handle stride, py::handle padding,
                                       py::handle output_padding, int64_t groups,
                                       py::handle dilation) {
  return cpu::conv_transpose2d_geometry(
      op, input, weight, int_pair(stride, op, "stride"), int_pair(padding, op, "padding"),
      int_pair(output_padding, op, "output_padding"), int_pair(dilation, op, "dilation"), groups);
}

// unfold's windows over input (N, C, H, W) as the geometry of a one-filter conv2d.
inline ConvGeometry window_geometry(const char* op, const Shape& input, py::handle kernel_size,
                                    py::handle dilation, py::handle padding, py::handle stride) {
  if (input.size() != 4)
    fail<ValueError>(op, ": expected a 4-D (N, C, H, W) image batch, got ", shape_str(input));
  const auto k = int_pair(kernel_size, op, "kernel_size");
  return conv2d_geometry(op, input, Shape{1, input[1], k[0], k[1]}, stride, padding, dilation,
                         1);
}

// fold's input (N, C*kh*kw, L) and output_size as the windows of unfold over the output.
inline ConvGeometry fold_geometry(const char* op, const Shape& c, py::handle output_size,
                                  py::handle kernel_size, py::handle dilation, py::handle padding,
                                  py::handle stride) {
  const auto k = int_pair(kernel_size, op, "kernel_size");
  const auto size = int_pair(output_size, op, "output_size");
  if (c.size() != 3 || k[0] < 1 || k[1] < 1 || c[1] % (k[0] * k[1]) != 0)
    fail<ValueError>(op, ": expected input of shape (N, C * ", k[0], " * ", k[1],
                     ", L) (C times the kernel's size), got ", shape_str(c));
  const ConvGeometry g = window_geometry(op, Shape{c[0], c[1] / (k[0] * k[1]), size[0], size[1]},
                                         kernel_size, dilation, padding, stride);
  if (c[2] != g.P * g.Q)
    fail<ValueError>(op, ": input ", shape_str(c), " has ", c[2], " blocks, but output_size (",
                     size[0], ", ", size[1], ") with these windows has ", g.P, " x ", g.Q, " = ",
                     g.P * g.Q);
  return g;
}

// The bias gradient's grad_output: 4-D (N, C, H, W).
inline void check_bias_grad(const char* op, const Shape& dy) {
  if (dy.size() != 4)
    fail<ValueError>(op, ": expected grad_output to be 4-D, got shape ", shape_str(dy));
}

}  // namespace kiln::bind
