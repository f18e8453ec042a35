// The shape checks the loss bindings of both backends share (bindings/loss.cpp on
// NumPy arrays, bindings/cuda/loss.cpp on CUDA arrays), on shapes, so the same
// inputs give the same errors on either device.
#pragma once

#include <optional>

#include "common/check.h"
#include "cpu/loss.h"

namespace kiln::bind::loss {

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// (N, C, d1, ...) viewed as (N, C, S).
inline ClassDims class_dims(const Shape& input, const char* op) {
  if (input.size() < 2)
    fail<ValueError>(op, ": expected input of shape (N, C) or (N, C, d1, ...), got ",
                     shape_str(input));
  ClassDims d{input[0], input[1], 1};
  for (size_t i = 2; i < input.size(); ++i) d.S *= input[i];
  return d;
}

// The shape of class-index targets (and of an unreduced loss): input's without C.
inline Shape per_position_shape(const Shape& input) {
  Shape s = input;
  s.erase(s.begin() + 1);
  return s;
}

inline void check_class_targets(const Shape& target, const Shape& input, const char* op) {
  const Shape want = per_position_shape(input);
  if (target == want) return;
  if (input.size() == 2 && target.size() == 1)
    fail<ValueError>(op, ": expected input batch size (", input[0],
                     ") to match target batch size (", target[0], "): input ", shape_str(input),
                     ", target ", shape_str(target));
  fail<ValueError>(op, ": target shape ", shape_str(target), " does not match input ",
                   shape_str(input), " (expected ", shape_str(want), ")");
}

inline void check_class_weight(const std::optional<Shape>& weight, int64_t C, const char* op) {
  if (weight && (weight->size() != 1 || (*weight)[0] != C))
    fail<ValueError>(op, ": weight should have one entry per class (", C, ",), got shape ",
                     shape_str(*weight));
}

// The loss's shape: `per_term` under 'none', 0-D otherwise.
inline Shape loss_shape(Reduction r, const Shape& per_term) {
  return r == Reduction::None ? per_term : Shape{};
}

// Checks the incoming gradient against the loss's shape.
inline void check_upstream(const Shape& g, Reduction r, const Shape& per_term, const char* op) {
  if (r == Reduction::None ? g != per_term : numel(g) != 1)
    fail<ValueError>(op, ": grad_output has shape ", shape_str(g), " but the loss has ",
                     shape_str(loss_shape(r, per_term)));
}

// multi_margin_loss: input (N, C) or (C,), target (N,) or () / (1,): the row count N.
inline int64_t margin_rows(const Shape& x, const Shape& target, const char* op) {
  if (x.size() != 1 && x.size() != 2)
    fail<ValueError>(op, ": expected input to be 1-D or 2-D, got shape ", shape_str(x));
  const int64_t N = x.size() == 2 ? x[0] : 1;
  if (target.size() > 1 || numel(target) != N)
    fail<ValueError>(op, ": expected target of shape (", N, ",) for input ", shape_str(x),
                     ", got ", shape_str(target));
  if (x.size() == 2 && x[1] == 0 && N > 0)
    fail<ValueError>(op, ": input ", shape_str(x), " has no classes");
  return N;
}

}  // namespace kiln::bind::loss
