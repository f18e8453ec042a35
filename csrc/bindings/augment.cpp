// Augmentation kernels on NumPy image batches, exposed as kiln.kernels.augment_*.
// Images are C-contiguous (N, C, H, W) uint8 or float32 arrays; per-image
// parameters arrive as arrays with one row per image. kiln.data.transforms
// draws the parameters; these functions only apply them.
#include <string>
#include <utility>

#include "bindings/augment_checks.h"
#include "bindings/families.h"
#include "bindings/marshal.h"
#include "cpu/augment.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::opt;
using marshal::out;

namespace ac = augment;

ImageBatch batch_of(const py::array& images, const char* op) {
  return ac::batch_of(shape_of(images), op);
}

void check_param(const py::array& a, const char* op, const char* name, const Shape& shape) {
  ac::check_param(shape_of(a), op, name, shape);
}

void check_param(const OptArray& a, const char* op, const char* name, const Shape& shape) {
  if (a) check_param(*a, op, name, shape);
}

// marshal::call for an image kernel: the images (the first operand) are uint8 or float32.
template <typename... Args>
py::object call_images(const char* op, Args&&... args) {
  return marshal::call<uint8_t, float>(op, std::forward<Args>(args)...);
}

py::object uniform_py(int64_t n, int64_t k, uint64_t seed, uint64_t offset) {
  check_uniform_table(n, k);
  return marshal::call<>("augment_uniform", out<double>({n, k}),
                         [&](double* u) { augment_uniform(u, n, k, seed, offset); });
}

py::object flip_py(const py::array& images, const OptArray& horizontal,
                   const OptArray& vertical) {
  const char* op = "augment_flip";
  const ImageBatch b = batch_of(images, op);
  check_param(horizontal, op, "horizontal", {b.n});
  check_param(vertical, op, "vertical", {b.n});
  return call_images(op, in(images, "images"), opt<uint8_t>(horizontal, "horizontal"),
                     opt<uint8_t>(vertical, "vertical"), out(shape_of(images)),
                     [&](auto* x, const uint8_t* fh, const uint8_t* fv, auto* y) {
                       augment_flip(x, y, b, fh, fv);
                     });
}

py::object crop_py(const py::array& images, std::pair<int64_t, int64_t> size,
                   const py::array& top, const py::array& left, const std::string& padding_mode,
                   const py::array& fill) {
  const char* op = "augment_crop";
  const ImageBatch b = batch_of(images, op);
  const PadMode mode = ac::pad_mode(padding_mode, op);
  check_param(top, op, "top", {b.n});
  check_param(left, op, "left", {b.n});
  check_param(fill, op, "fill", {b.c});
  const int64_t h = size.first, w = size.second;
  check_out_size(op, "a crop size", h, w);
  return call_images(op, in(images, "images"), in<int64_t>(top, "top"),
                     in<int64_t>(left, "left"), in<float>(fill, "fill"), out({b.n, b.c, h, w}),
                     [&](auto* x, const int64_t* tp, const int64_t* lp,
                                       const float* fp, auto* y) {
                       augment_crop(x, y, b, h, w, tp, lp, mode, fp);
                     });
}

py::object resized_crop_py(const py::array& images, const py::array& boxes,
                           std::pair<int64_t, int64_t> size, bool antialias) {
  const char* op = "augment_resized_crop";
  const ImageBatch b = batch_of(images, op);
  check_param(boxes, op, "boxes", {b.n, 4});
  const int64_t h = size.first, w = size.second;
  check_out_size(op, "an output size", h, w);
  return call_images(op, in(images, "images"), in<int64_t>(boxes, "boxes"),
                     out({b.n, b.c, h, w}), [&](auto* x, const int64_t* bp, auto* y) {
                       augment_resized_crop(x, y, b, bp, h, w, antialias);
                     });
}

py::object affine_py(const py::array& images, const py::array& theta, const py::array& fill) {
  const char* op = "augment_affine";
  const ImageBatch b = batch_of(images, op);
  check_param(theta, op, "theta", {b.n, 2, 3});
  check_param(fill, op, "fill", {b.c});
  return call_images(op, in(images, "images"), in<double>(theta, "theta"),
                     in<float>(fill, "fill"), out(shape_of(images)),
                     [&](auto* x, const double* tp, const float* fp, auto* y) {
                       augment_affine(x, y, b, tp, fp);
                     });
}

py::object color_jitter_py(const py::array& images, const py::array& factors,
                           const py::array& order) {
  const char* op = "augment_color_jitter";
  const ImageBatch b = batch_of(images, op);
  check_param(factors, op, "factors", {b.n, 4});
  check_param(order, op, "order", {b.n, 4});
  return call_images(op, in(images, "images"), in<float>(factors, "factors"),
                     in<int8_t>(order, "order"), out(shape_of(images)),
                     [&](auto* x, const float* fp, const int8_t* orp, auto* y) {
                       augment_color_jitter(x, y, b, fp, orp);
                     });
}

py::object channel_affine_py(const py::array& images, const py::array& scale,
                             const py::array& offset, const std::string& out_dtype) {
  const char* op = "augment_channel_affine";
  const ImageBatch b = batch_of(images, op);
  const bool per_image = scale.ndim() == 2;
  const Shape shape = per_image ? Shape{b.n, b.c} : Shape{b.c};
  check_param(scale, op, "scale", shape);
  check_param(offset, op, "offset", shape);
  auto kernel = [&](auto* x, const float* sp, const float* op_, auto* y) {
    augment_channel_affine(x, y, b, sp, op_, per_image);
  };
  if (ac::channel_affine_float_out(out_dtype, match_dtype<float>(images) == DtypeMatch::Yes, op))
    return call_images(op, in(images, "images"), in<float>(scale, "scale"),
                       in<float>(offset, "offset"), out<float>(shape_of(images)), kernel);
  return marshal::call<uint8_t>(op, in(images, "images"), in<float>(scale, "scale"),
                                in<float>(offset, "offset"), out<uint8_t>(shape_of(images)),
                                kernel);
}

py::object box_fill_py(const py::array& images, const py::array& boxes,
                       const std::string& source, const OptArray& value, const OptArray& partner,
                       uint64_t seed, uint64_t offset) {
  const char* op = "augment_box_fill";
  const ImageBatch b = batch_of(images, op);
  check_param(boxes, op, "boxes", {b.n, 4});
  const BoxSource src = ac::box_source(source, value.has_value(), partner.has_value(), op);
  if (src == BoxSource::kValue) check_param(value, op, "value", {b.c});
  if (src == BoxSource::kPartner) check_param(partner, op, "partner", {b.n});
  // The source's array only: the other is not read, whatever was passed.
  const OptArray none;
  return call_images(
      op, in(images, "images"), in<int64_t>(boxes, "boxes"),
      opt<float>(src == BoxSource::kValue ? value : none, "value"),
      opt<int64_t>(src == BoxSource::kPartner ? partner : none, "partner"),
      out(shape_of(images)),
      [&](auto* x, const int64_t* bp, const float* vp, const int64_t* pp, auto* y) {
        augment_box_fill(x, y, b, bp, src, vp, seed, offset, pp);
      });
}

py::object blend_pairs_py(const py::array& images, const py::array& partner,
                          const py::array& lam) {
  const char* op = "augment_blend_pairs";
  const ImageBatch b = batch_of(images, op);
  check_param(partner, op, "partner", {b.n});
  check_param(lam, op, "lam", {b.n});
  return call_images(op, in(images, "images"), in<int64_t>(partner, "partner"),
                     in<float>(lam, "lam"), out(shape_of(images)),
                     [&](auto* x, const int64_t* pp, const float* lp, auto* y) {
                       augment_blend_pairs(x, y, b, pp, lp);
                     });
}

}  // namespace

void bind_augment(py::module_& m) {
  m.def("augment_uniform", &uniform_py, py::arg("n"), py::arg("k"), py::arg("seed"),
        py::arg("offset"),
        R"doc(Uniform draws in [0, 1) for per-image augmentation parameters: float64 (n, k).

Row i comes from Philox-4x32-10 under seed at counters offset + i*ceil(k/4) ...,
4 draws per counter, so row i depends only on (seed, offset, i). The call
consumes n*ceil(k/4) counters.)doc");
  m.def("augment_flip", &flip_py, py::arg("images"), py::arg("horizontal") = py::none(),
        py::arg("vertical") = py::none(),
        R"doc(Flips image n left-right where horizontal[n] and upside down where vertical[n].

images (N, C, H, W) uint8 or float32; horizontal, vertical: uint8 (N,) or None.
Returns a new (N, C, H, W) array.)doc");
  m.def("augment_crop", &crop_py, py::arg("images"), py::arg("size"), py::arg("top"),
        py::arg("left"), py::arg("padding_mode"), py::arg("fill"),
        R"doc(Crops an (h, w) window at (top[n], left[n]) of each padded image.

images (N, C, H, W) uint8 or float32; size (h, w); top, left: int64 (N,) in the
unpadded image's coordinates (negative reaches into the padding); padding_mode
'constant' (fill: float32 (C,)), 'reflect' (no edge repeat, as numpy/PyTorch,
repeated for wide pads) or 'edge'. Returns (N, C, h, w).)doc");
  m.def("augment_resized_crop", &resized_crop_py, py::arg("images"), py::arg("boxes"),
        py::arg("size"), py::arg("antialias") = true,
        R"doc(Resamples box n = boxes[n] = (top, left, height, width) of image n to size (h, w).

Bilinear with PIL's filter: when shrinking and antialias, the triangle widens
by the scale factor (PIL's / torchvision's antialiased bilinear). Boxes lie
inside the image. images (N, C, H, W) uint8 or float32 -> (N, C, h, w).)doc");
  m.def("augment_affine", &affine_py, py::arg("images"), py::arg("theta"), py::arg("fill"),
        R"doc(Affine warp with bilinear sampling.

theta: float64 (N, 2, 3) maps output pixel (j, i) (column, row, pixel-index
coordinates) to the input position (x, y) it samples; samples outside the
image read fill (float32 (C,)). images (N, C, H, W) uint8 or float32 -> same shape.)doc");
  m.def("augment_color_jitter", &color_jitter_py, py::arg("images"), py::arg("factors"),
        py::arg("order"),
        R"doc(Brightness, contrast, saturation and hue adjustment with torchvision's semantics.

factors: float32 (N, 4) = (brightness, contrast, saturation, hue) per image;
order: int8 (N, 4), the ops to apply in turn (0 brightness, 1 contrast,
2 saturation, 3 hue, -1 none). images (N, C, H, W) with C = 1 or 3: uint8 in
[0, 255] or float32 in [0, 1]; values are clamped to that range after each op.)doc");
  m.def("augment_channel_affine", &channel_affine_py, py::arg("images"), py::arg("scale"),
        py::arg("offset"), py::arg("out_dtype") = "float32",
        R"doc(y[n, c] = images[n, c] * scale[c] + offset[c] (or scale[n, c], offset[n, c]).

scale, offset: float32 (C,) or (N, C). images uint8 or float32 (N, C, H, W);
out_dtype 'float32', or 'uint8' for uint8 images (rounded, saturated).)doc");
  m.def("augment_box_fill", &box_fill_py, py::arg("images"), py::arg("boxes"), py::arg("source"),
        py::arg("value") = py::none(), py::arg("partner") = py::none(), py::arg("seed") = 0,
        py::arg("offset") = 0,
        R"doc(Copies images and overwrites box n = (top, left, height, width) of image n.

source 'value': value[c] (float32 (C,)); 'normal': N(0, 1) draws (float32 images
only; image n reads Philox(seed, offset + n*ceil(C*H*W/2)), consuming
N*ceil(C*H*W/2) counters); 'partner': the same box of image partner[n]
(int64 (N,)). Boxes lie inside the image; an empty box leaves the image as is.)doc");
  m.def("augment_blend_pairs", &blend_pairs_py, py::arg("images"), py::arg("partner"),
        py::arg("lam"),
        R"doc(y[n] = lam[n] * images[n] + (1 - lam[n]) * images[partner[n]].

partner: int64 (N,); lam: float32 (N,). uint8 results are rounded.)doc");
}

}  // namespace kiln::bind
