// The argument checks of the augmentation bindings on shapes and strings alone,
// shared by the CPU (bindings/augment.cpp) and CUDA (bindings/cuda/augment.cpp)
// bindings so both raise the same errors before any kernel runs. The checks of the
// parameters' values are the kernels' own (cpu/augment.h), made by both devices.
#pragma once

#include <string>

#include "common/check.h"
#include "cpu/augment.h"

namespace kiln::bind::augment {

// The batch's sizes from images' shape (N, C, H, W); each kernel checks them itself
// (check_image_batch).
inline ImageBatch batch_of(const Shape& s, const char* op) {
  if (s.size() != 4)
    fail<ValueError>(op, ": expected images (N, C, H, W) to be 4-D, got shape ", shape_str(s));
  return {s[0], s[1], s[2], s[3]};
}

// A parameter array has exactly `want`.
inline void check_param(const Shape& got, const char* op, const char* name, const Shape& want) {
  if (got != want)
    fail(op, ": expected ", name, " of shape ", shape_str(want), ", got ", shape_str(got));
}

inline PadMode pad_mode(const std::string& mode, const char* op) {
  if (mode == "constant") return PadMode::kConstant;
  if (mode == "reflect") return PadMode::kReflect;
  if (mode == "edge") return PadMode::kEdge;
  fail(op, ": padding_mode must be 'constant', 'reflect' or 'edge', got '", mode, "'");
}

// box_fill's source, with the array it reads present ('value': value, 'partner': partner).
inline BoxSource box_source(const std::string& source, bool has_value, bool has_partner,
                            const char* op) {
  if (source == "value") {
    if (!has_value) fail(op, ": source='value' needs value (C,)");
    return BoxSource::kValue;
  }
  if (source == "normal") return BoxSource::kNormal;
  if (source == "partner") {
    if (!has_partner) fail(op, ": source='partner' needs partner (N,)");
    return BoxSource::kPartner;
  }
  fail(op, ": source must be 'value', 'normal' or 'partner', got '", source, "'");
}

// channel_affine's output: float32 (true) or uint8 (false, for uint8 images only).
inline bool channel_affine_float_out(const std::string& out_dtype, bool float_images,
                                     const char* op) {
  if (out_dtype == "float32") return true;
  if (out_dtype != "uint8")
    fail(op, ": out_dtype must be 'uint8' or 'float32', got '", out_dtype, "'");
  if (float_images) fail(op, ": float32 images map to float32 only (out_dtype='float32')");
  return false;
}

}  // namespace kiln::bind::augment
