// The shape checks of the normalization bindings on shapes alone, shared by the
// CPU (bindings/norm.cpp) and CUDA (bindings/cuda/norm.cpp) bindings so both raise
// the same errors.
#pragma once

#include <utility>

#include "common/check.h"
#include "cpu/norm.h"

namespace kiln::bind {

// batch_norm's running statistics (both or neither) and check_batch_norm_args.
inline void check_batch_norm_call(const char* op, const Shape& input, bool training,
                                  bool has_running_mean, bool has_running_var, double eps) {
  if (has_running_mean != has_running_var)
    fail(op, ": running_mean and running_var must either both be None or neither be None");
  check_batch_norm_args(op, input, training, has_running_mean, eps);
}

// group_norm's eps must be positive, layer_norm's non-negative (as PyTorch).
inline void check_eps(const char* op, double eps, bool positive) {
  if (positive && !(eps > 0)) fail(op, ": eps must be positive, got ", eps);
  if (!positive && !(eps >= 0)) fail(op, ": eps must be non-negative, got ", eps);
}

inline void check_grad_output(const Shape& grad_output, const Shape& input, const char* op) {
  if (grad_output != input)
    fail(op, ": grad_output ", shape_str(grad_output), " must have the shape of input ",
         shape_str(input));
}

// The fused batch norm's residual / output: input's shape.
inline void check_input_shaped(const Shape& a, const char* op, const char* name,
                             const Shape& input) {
  if (a != input)
    fail(op, ": ", name, " ", shape_str(a), " must have the shape of input ", shape_str(input));
}

// group norm's mean and rstd: (N, G).
inline void check_group_stats(const Shape& mean, const Shape& rstd, const GroupNormSizes& sz,
                              const char* op) {
  for (const auto& [stat, name] : {std::pair(&mean, "mean"), std::pair(&rstd, "rstd")})
    if (*stat != Shape{sz.n, sz.groups})
      fail(op, ": expected ", name, " of shape ", shape_str({sz.n, sz.groups}), ", got ",
           shape_str(*stat));
}

// layer norm's weight or bias: normalized_shape.
inline void check_layer_affine(const Shape& a, const char* op, const char* name,
                               const Shape& norm_shape) {
  if (a != norm_shape)
    fail(op, ": expected ", name, " of shape ", shape_str(norm_shape), " (normalized_shape), got ",
         shape_str(a));
}

// layer norm's mean or rstd: (M,).
inline void check_row_stat(const Shape& stat, const char* op, const char* name,
                           const LayerNormSizes& sz) {
  if (stat != Shape{sz.rows})
    fail(op, ": expected ", name, " of shape (", sz.rows, ",), got ", shape_str(stat));
}

}  // namespace kiln::bind
