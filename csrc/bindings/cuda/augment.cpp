// kiln._C_cuda augmentation: the twins of bindings/augment.cpp (same names, arguments,
// checks and results) on CUDA image batches. The images are CUDA arrays (uint8 or
// float32, (N, C, H, W)); the per-image parameters stay what the CPU binding takes,
// host NumPy arrays, read and checked on the host and copied to the device by the
// kernels (cuda/augment.h), so the same parameter tables give the same batch on
// either device (a strided table is read through a contiguous copy, as on the CPU).
// augment_uniform returns its table on the current device.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "bindings/arrays.h"
#include "bindings/augment_checks.h"
#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "cuda/augment.h"

namespace kiln::cuda::bind {
namespace {

namespace ac = kiln::bind::augment;
namespace kc = kiln::cuda;
using kiln::bind::OptArray;

// A host parameter table as the kernel reads it: the array, or its C-contiguous copy
// when the argument is strided (as the CPU binding's marshal::in), kept through the call.
template <typename T>
struct Param {
  py::object keep;
  const T* data = nullptr;
};

// Checks a parameter's shape and dtype T as the CPU binding does.
template <typename T>
Param<T> param(const py::array& a, const char* op, const char* name, const Shape& shape) {
  ac::check_param(kiln::bind::shape_of(a), op, name, shape);
  if (kiln::bind::match_dtype<T>(a) != kiln::bind::DtypeMatch::Yes)
    kiln::bind::fail_dtype<T>(a, op, name);
  py::array contiguous = py::array::ensure(a, py::array::c_style);
  if (!contiguous) throw py::error_already_set();
  const T* data = static_cast<const T*>(contiguous.data());
  return {std::move(contiguous), data};
}

template <typename T>
Param<T> param(const OptArray& a, const char* op, const char* name, const Shape& shape) {
  return a ? param<T>(*a, op, name, shape) : Param<T>{};
}

// The images: a CUDA array of 4 dimensions, uint8 or float32 (TypeError as the CPU
// binding's for any other dtype).
struct Images {
  DeviceView view;
  ImageBatch batch;
};

Images images_of(py::handle obj, const char* op) {
  const DeviceView v = view_of(obj, op, "images");
  const ImageBatch b = ac::batch_of(v.shape, op);
  if (v.dtype != Dtype::UInt8 && v.dtype != Dtype::Float32)
    fail<TypeError>(op, ": expected images of dtype uint8 or float32, got ",
                    dtype_label(v.dtype), " with shape ", shape_str(v.shape));
  return {v, b};
}

// Calls f(T{}) with T = uint8_t or float, the images' dtype, on their device with the
// GIL released.
template <typename F>
void launch_images(const DeviceView& x, F&& f) {
  launch_on(x.device, [&] {
    if (x.dtype == Dtype::UInt8)
      f(uint8_t{});
    else
      f(float{});
  });
}

ArrayPtr like_images(const Images& im, const Shape& shape) {
  return DeviceArray::empty(shape, im.view.dtype, im.view.device);
}

py::object uniform_py(int64_t n, int64_t k, uint64_t seed, uint64_t offset) {
  check_uniform_table(n, k);
  const int device = current_device();
  auto u = DeviceArray::empty({n, k}, Dtype::Float64, device);
  launch_on(device, [&] { kc::augment_uniform(u->ptr<double>(), n, k, seed, offset); });
  return py::cast(u);
}

py::object flip_py(py::handle images, const OptArray& horizontal, const OptArray& vertical) {
  const char* op = "augment_flip";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto fh = param<uint8_t>(horizontal, op, "horizontal", {b.n});
  const auto fv = param<uint8_t>(vertical, op, "vertical", {b.n});
  ArrayPtr y = like_images(im, im.view.shape);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_flip(im.view.ptr<T>(), y->ptr<T>(), b, fh.data, fv.data);
  });
  return py::cast(y);
}

py::object crop_py(py::handle images, std::pair<int64_t, int64_t> size, const py::array& top,
                   const py::array& left, const std::string& padding_mode,
                   const py::array& fill) {
  const char* op = "augment_crop";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const PadMode mode = ac::pad_mode(padding_mode, op);
  const auto tp = param<int64_t>(top, op, "top", {b.n});
  const auto lp = param<int64_t>(left, op, "left", {b.n});
  const auto fp = param<float>(fill, op, "fill", {b.c});
  const int64_t h = size.first, w = size.second;
  check_out_size(op, "a crop size", h, w);
  ArrayPtr y = like_images(im, {b.n, b.c, h, w});
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_crop(im.view.ptr<T>(), y->ptr<T>(), b, h, w, tp.data, lp.data, mode, fp.data);
  });
  return py::cast(y);
}

py::object resized_crop_py(py::handle images, const py::array& boxes,
                           std::pair<int64_t, int64_t> size, bool antialias) {
  const char* op = "augment_resized_crop";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto bp = param<int64_t>(boxes, op, "boxes", {b.n, 4});
  const int64_t h = size.first, w = size.second;
  check_out_size(op, "an output size", h, w);
  ArrayPtr y = like_images(im, {b.n, b.c, h, w});
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_resized_crop(im.view.ptr<T>(), y->ptr<T>(), b, bp.data, h, w, antialias);
  });
  return py::cast(y);
}

py::object affine_py(py::handle images, const py::array& theta, const py::array& fill) {
  const char* op = "augment_affine";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto tp = param<double>(theta, op, "theta", {b.n, 2, 3});
  const auto fp = param<float>(fill, op, "fill", {b.c});
  ArrayPtr y = like_images(im, im.view.shape);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_affine(im.view.ptr<T>(), y->ptr<T>(), b, tp.data, fp.data);
  });
  return py::cast(y);
}

py::object color_jitter_py(py::handle images, const py::array& factors, const py::array& order) {
  const char* op = "augment_color_jitter";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto fp = param<float>(factors, op, "factors", {b.n, 4});
  const auto orp = param<int8_t>(order, op, "order", {b.n, 4});
  ArrayPtr y = like_images(im, im.view.shape);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_color_jitter(im.view.ptr<T>(), y->ptr<T>(), b, fp.data, orp.data);
  });
  return py::cast(y);
}

py::object channel_affine_py(py::handle images, const py::array& scale, const py::array& offset,
                             const std::string& out_dtype) {
  const char* op = "augment_channel_affine";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const bool per_image = scale.ndim() == 2;
  const Shape shape = per_image ? Shape{b.n, b.c} : Shape{b.c};
  const auto sp = param<float>(scale, op, "scale", shape);
  const auto offp = param<float>(offset, op, "offset", shape);
  const bool float_out =
      ac::channel_affine_float_out(out_dtype, im.view.dtype == Dtype::Float32, op);
  ArrayPtr y = DeviceArray::empty(im.view.shape, float_out ? Dtype::Float32 : Dtype::UInt8,
                                  im.view.device);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    if (float_out)
      kc::augment_channel_affine(im.view.ptr<T>(), y->ptr<float>(), b, sp.data, offp.data,
                                 per_image);
    else if constexpr (std::is_same_v<T, uint8_t>)
      kc::augment_channel_affine(im.view.ptr<T>(), y->ptr<uint8_t>(), b, sp.data, offp.data,
                                 per_image);
  });
  return py::cast(y);
}

py::object box_fill_py(py::handle images, const py::array& boxes, const std::string& source,
                       const OptArray& value, const OptArray& partner, uint64_t seed,
                       uint64_t offset) {
  const char* op = "augment_box_fill";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto bp = param<int64_t>(boxes, op, "boxes", {b.n, 4});
  const BoxSource src = ac::box_source(source, value.has_value(), partner.has_value(), op);
  // The source's array only: the other is not read, whatever was passed.
  const auto vp = param<float>(src == BoxSource::kValue ? value : OptArray(), op, "value", {b.c});
  const auto pp =
      param<int64_t>(src == BoxSource::kPartner ? partner : OptArray(), op, "partner", {b.n});
  ArrayPtr y = like_images(im, im.view.shape);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_box_fill(im.view.ptr<T>(), y->ptr<T>(), b, bp.data, src, vp.data, seed, offset,
                         pp.data);
  });
  return py::cast(y);
}

py::object blend_pairs_py(py::handle images, const py::array& partner, const py::array& lam) {
  const char* op = "augment_blend_pairs";
  const Images im = images_of(images, op);
  const ImageBatch b = im.batch;
  const auto pp = param<int64_t>(partner, op, "partner", {b.n});
  const auto lp = param<float>(lam, op, "lam", {b.n});
  ArrayPtr y = like_images(im, im.view.shape);
  launch_images(im.view, [&](auto zero) {
    using T = decltype(zero);
    kc::augment_blend_pairs(im.view.ptr<T>(), y->ptr<T>(), b, pp.data, lp.data);
  });
  return py::cast(y);
}

}  // namespace

void bind_augment(py::module_& m) {
  m.def("augment_uniform", &uniform_py, py::arg("n"), py::arg("k"), py::arg("seed"),
        py::arg("offset"), twin_doc("augment_uniform").c_str());
  m.def("augment_flip", &flip_py, py::arg("images"), py::arg("horizontal") = py::none(),
        py::arg("vertical") = py::none(), twin_doc("augment_flip").c_str());
  m.def("augment_crop", &crop_py, py::arg("images"), py::arg("size"), py::arg("top"),
        py::arg("left"), py::arg("padding_mode"), py::arg("fill"),
        twin_doc("augment_crop").c_str());
  m.def("augment_resized_crop", &resized_crop_py, py::arg("images"), py::arg("boxes"),
        py::arg("size"), py::arg("antialias") = true, twin_doc("augment_resized_crop").c_str());
  m.def("augment_affine", &affine_py, py::arg("images"), py::arg("theta"), py::arg("fill"),
        twin_doc("augment_affine").c_str());
  m.def("augment_color_jitter", &color_jitter_py, py::arg("images"), py::arg("factors"),
        py::arg("order"), twin_doc("augment_color_jitter").c_str());
  m.def("augment_channel_affine", &channel_affine_py, py::arg("images"), py::arg("scale"),
        py::arg("offset"), py::arg("out_dtype") = "float32",
        twin_doc("augment_channel_affine").c_str());
  m.def("augment_box_fill", &box_fill_py, py::arg("images"), py::arg("boxes"), py::arg("source"),
        py::arg("value") = py::none(), py::arg("partner") = py::none(), py::arg("seed") = 0,
        py::arg("offset") = 0, twin_doc("augment_box_fill").c_str());
  m.def("augment_blend_pairs", &blend_pairs_py, py::arg("images"), py::arg("partner"),
        py::arg("lam"), twin_doc("augment_blend_pairs").c_str());
}

}  // namespace kiln::cuda::bind
