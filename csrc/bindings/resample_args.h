// interpolate's mode, options and sizes from the binding's arguments, shared by the
// CPU (bindings/resample.cpp) and CUDA (bindings/cuda/resample.cpp) bindings.
#pragma once

#include <string>

#include "common/check.h"
#include "cpu/resample.h"

namespace kiln::bind {

inline Resample parse_mode(const std::string& mode, const char* op) {
  if (mode == "nearest") return Resample::Nearest;
  if (mode == "nearest-exact") return Resample::NearestExact;
  if (mode == "bilinear") return Resample::Bilinear;
  if (mode == "bicubic") return Resample::Bicubic;
  fail<ValueError>(op, ": mode must be 'nearest', 'nearest-exact', 'bilinear' or 'bicubic', got '",
                   mode, "'");
}

inline ResampleOptions options(const std::string& mode, bool align_corners, double scale_h,
                               double scale_w, bool antialias, const char* op) {
  return {parse_mode(mode, op), align_corners, scale_h, scale_w, antialias};
}

inline ResampleSizes resample_sizes(const Shape& in_shape, int64_t out_h, int64_t out_w,
                                    const char* op) {
  if (in_shape.size() != 4)
    fail<ValueError>(op, ": expected a 4-D (N, C, H, W) input, got ", shape_str(in_shape));
  if (out_h <= 0 || out_w <= 0 || in_shape[2] <= 0 || in_shape[3] <= 0)
    fail<ValueError>(op, ": input ", shape_str(in_shape), " and output size (", out_h, ", ",
                     out_w, ") must be positive");
  return {in_shape[0] * in_shape[1], in_shape[2], in_shape[3], out_h, out_w};
}

// interpolate_backward: grad_output (N, C, OH, OW) against input_shape (N, C, H, W).
inline ResampleSizes backward_sizes(const Shape& g, const Shape& input_shape, const char* op) {
  if (g.size() != 4 || input_shape.size() != 4 || g[0] != input_shape[0] ||
      g[1] != input_shape[1])
    fail<ValueError>(op, ": grad_output ", shape_str(g), " does not match input ",
                     shape_str(input_shape));
  return resample_sizes(input_shape, g[2], g[3], op);
}

}  // namespace kiln::bind
