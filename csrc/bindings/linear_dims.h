// The shapes of linear and matmul as their bindings check them, on shapes alone:
// shared by the CPU (bindings/linear.cpp) and CUDA (bindings/cuda/linear.cpp)
// bindings, so both raise the same errors.
#pragma once

#include <cstddef>

#include "common/check.h"
#include "cpu/linear.h"

namespace kiln::bind {

struct LinearDims {
  int64_t M, K, N;
  Shape out;
};

// input (*, K), weight (N, K) -> M = prod(*), output (*, N).
inline LinearDims linear_dims(const Shape& xs, const Shape& ws, const char* op) {
  if (xs.empty())
    fail<ValueError>(op, ": input must have at least 1 dimension, got shape ", shape_str(xs));
  if (ws.size() != 2)
    fail<ValueError>(op, ": expected weight to be 2-D, got shape ", shape_str(ws));
  LinearDims d;
  d.K = xs.back();
  d.N = ws[0];
  if (ws[1] != d.K)
    fail<ValueError>(op, ": input ", shape_str(xs), " has ", d.K, " features but weight ",
                     shape_str(ws), " expects ", ws[1]);
  d.M = 1;
  for (size_t i = 0; i + 1 < xs.size(); ++i) d.M *= xs[i];
  d.out = xs;
  d.out.back() = d.N;
  return d;
}

// bias, when given, has shape (N,).
inline void check_linear_bias(const Shape& bias, const LinearDims& d, const Shape& ws,
                              const char* op) {
  if (bias.size() != 1 || bias[0] != d.N)
    fail<ValueError>(op, ": bias has shape ", shape_str(bias), ", expected (", d.N,
                     ",) for weight ", shape_str(ws));
}

struct MatmulDims {
  BatchBroadcast bb;
  int64_t M, K, N;
  Shape out;
};

// NumPy's matmul shapes: a 1-D left operand is a row (K,) -> (1, K), a 1-D right
// operand a column (K,) -> (K, 1), and those unit dimensions leave the result.
inline MatmulDims matmul_dims(const Shape& as, const Shape& bs, const char* op) {
  if (as.empty() || bs.empty())
    fail<ValueError>(op, ": both arguments need at least 1 dimension, got shapes ",
                     shape_str(as), " and ", shape_str(bs));
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

inline void check_grad_shape(const Shape& g, const Shape& want, const char* op) {
  if (g != want)
    fail<ValueError>(op, ": grad_output has shape ", shape_str(g), " but the output has ",
                     shape_str(want));
}

}  // namespace kiln::bind
