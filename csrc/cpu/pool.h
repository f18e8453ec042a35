// 2-D pooling over (N, C, H, W) or unbatched (C, H, W) inputs, forward and
// backward. Every (n, c) plane is pooled independently, so the kernels see
// `planes` = N*C (or C) contiguous H x W planes and thread over them.
//
// Window of output (oh, ow) along H (W is the same with its own sizes):
//   h(oh, kh) = oh*sH - pH + kh*dH,  kh = 0..kH-1,  taps outside [0, H) are padding.
//   OH = floor((H + 2pH - dH(kH-1) - 1 + (ceil_mode ? sH-1 : 0)) / sH) + 1,
//        minus one when ceil_mode makes the last window start at or past H + pH.
//
//   forward                                         backward
//   max_pool2d:  y = max over taps (padding -inf)   dx[ind] += dy   (ind = argmax, h*W + w)
//                ind = flat argmax in the plane
//   avg_pool2d:  y = sum over in-bounds taps / div  dx[tap] += dy / div for in-bounds taps
//                div = divisor_override, else window size clipped to the padded input
//                (count_include_pad) or to the input (not count_include_pad)
//   adaptive_avg_pool2d: window rows [floor(oh*H/OH), ceil((oh+1)*H/OH)), cols alike;
//                y = mean over window                dx[tap] += dy / window size
//   adaptive_max_pool2d: same windows, y = max, ind = argmax; backward = max_pool2d's.
//   fractional_max_pool2d (Graham 2014, as PyTorch's CPU kernel): kH x kW windows
//                at pseudo-random starts; plane p = n*C + c draws u = samples[p, 0] for
//                W and samples[p, 1] for H (samples (N', C, 2), N' >= N, in [0, 1)),
//                and along H (W alike, in T arithmetic, int() truncating)
//                  alpha = (H - kH) / (OH - 1),
//                  start[i] = int((i + u) * alpha) - int(u * alpha)  for i < OH - 1,
//                  start[OH - 1] = H - kH;
//                y = max over the window, ind = argmax; backward = max_pool2d's.
//
// A NaN in a window wins (PyTorch's rule: take v when v > max or v is NaN).
#pragma once

#include <cstdint>
#include <optional>

#include "common/check.h"

namespace kiln {

// Window geometry, index 0 = H, 1 = W. avg_pool2d uses dilation 1.
struct Pool2dWindow {
  int64_t kernel[2] = {1, 1};
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  bool ceil_mode = false;
};

// One call's sizes: `planes` independent in_h x in_w planes pooled to out_h x out_w.
struct Pool2dSizes {
  int64_t planes = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
};

// Output length of one pooled dimension by PyTorch's rule (may be < 1: the caller checks).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                         int64_t dilation, bool ceil_mode);

// Validates input shape (N, C, H, W) / (C, H, W) and window as PyTorch does
// (positive kernel/stride/dilation, 0 <= padding <= kernel/2, output at least 1x1);
// throws ValueError naming `op` and the shapes.
Pool2dSizes pool2d_sizes(const char* op, const Shape& input, const Pool2dWindow& win);
// The same for adaptive pooling to out_h x out_w (sizes >= 0; H, W > 0).
Pool2dSizes adaptive_pool2d_sizes(const char* op, const Shape& input, int64_t out_h,
                                  int64_t out_w);
// `input` with its last two sizes replaced by (out_h, out_w).
Shape pool2d_output_shape(const Shape& input, int64_t out_h, int64_t out_w);
// Backward: checks that grad_output has the shape forward produced for `input`.
void check_pool2d_grad(const char* op, const Shape& grad_output, const Shape& input,
                       const Pool2dSizes& sizes);
// Backward through argmax indices: sizes from the input shape and grad_output's
// shape (same rank, same leading dims).
Pool2dSizes pool2d_grad_sizes(const char* op, const Shape& grad_output, const Shape& input);

// indices may be null: then only the maxima are computed (for a forward that
// needs no backward), which is several times cheaper.
template <typename T>
void max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s,
                        const Pool2dWindow& win);
// dx = zeros, then dx[plane][indices] += dy. Index -1 (a window wholly in
// padding) is skipped; any other index outside [0, H*W) throws ValueError.
// Also the backward of adaptive_max_pool2d (`op` names the caller in errors).
template <typename T>
void max_pool2d_backward(const char* op, const T* dy, const int64_t* indices, T* dx,
                         const Pool2dSizes& s);

// avg_pool2d's divisor_override, when given, must be non-zero.
void check_divisor_override(const char* op, std::optional<int64_t> divisor_override);

template <typename T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s, const Pool2dWindow& win,
                        bool count_include_pad, std::optional<int64_t> divisor_override);
template <typename T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s, const Pool2dWindow& win,
                         bool count_include_pad, std::optional<int64_t> divisor_override);

template <typename T>
void adaptive_avg_pool2d_forward(const T* x, T* y, const Pool2dSizes& s);
template <typename T>
void adaptive_avg_pool2d_backward(const T* dy, T* dx, const Pool2dSizes& s);

template <typename T>
void adaptive_max_pool2d_forward(const T* x, T* y, int64_t* indices, const Pool2dSizes& s);

// fractional_max_pool2d: validates input (N, C, H, W) / (C, H, W), kernel (kH, kW)
// > 0 and output (OH, OW) >= 0 with OH + kH - 1 <= H and OW + kW - 1 <= W, and
// samples (N' >= N (1 when unbatched), C, 2).
Pool2dSizes fractional_max_pool2d_sizes(const char* op, const Shape& input, int64_t kernel_h,
                                        int64_t kernel_w, int64_t out_h, int64_t out_w,
                                        const Shape& samples);

// Writes y and indices (flat h*W + w in the plane); samples as above. Throws
// ValueError if a sample puts a window outside the input (u outside [0, 1)
// can). The backward is max_pool2d_backward.
template <typename T>
void fractional_max_pool2d_forward(const T* x, const T* samples, T* y, int64_t* indices,
                                   const Pool2dSizes& s, int64_t kernel_h, int64_t kernel_w);

}  // namespace kiln
