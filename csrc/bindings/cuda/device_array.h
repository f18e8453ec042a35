// CUDA arrays at the Python boundary of kiln._C_cuda: the twin of arrays.h/marshal.h.
//
// In:  any object with __cuda_array_interface__ (version 2 or 3: CuPy arrays, a
//      DeviceArray, Numba's), read by view_of() into a DeviceView: pointer, shape,
//      dtype, device. Kernels take C-contiguous memory only; the Python backend makes
//      its arrays contiguous before calling, so a strided view here is a ValueError.
// Out: DeviceArray, a block of the device's caching allocator (cuda/runtime.h) with a
//      shape and a dtype, exposing __cuda_array_interface__ so CuPy wraps it without a
//      copy (cupy.asarray keeps the DeviceArray alive as the memory's owner).
//
// Streams: every kiln kernel on device d runs on stream(d), and the Python backend
// makes that stream CuPy's current one, so producers and consumers are ordered by
// the one stream and the interface carries no "stream" entry (no extra sync).
//
// A binding reads like this:
//   m.def("relu_forward", [](py::handle x_obj) {
//     const DeviceView x = view_of(x_obj, "relu", "input");
//     auto y = DeviceArray::empty_like(x);
//     dispatch_float(x, "relu", "input", [&](auto zero) {
//       using T = decltype(zero);
//       py::gil_scoped_release release;
//       DeviceGuard guard(x.device);
//       kiln::cuda::relu_forward(x.ptr<T>(), y->ptr<T>(), x.numel());
//     });
//     return y;
//   });
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/check.h"

namespace kiln::cuda::bind {

namespace py = pybind11;

enum class Dtype { Float32, Float64, Int64, Int32, UInt8, Int8, Bool };

size_t itemsize(Dtype dtype);
const char* dtype_label(Dtype dtype);  // NumPy's name: "float32", "int64", ...
const char* typestr(Dtype dtype);      // the interface's: "<f4", "<i8", "|u1", "|b1", ...

template <typename T>
constexpr Dtype dtype_of();
template <> constexpr Dtype dtype_of<float>() { return Dtype::Float32; }
template <> constexpr Dtype dtype_of<double>() { return Dtype::Float64; }
template <> constexpr Dtype dtype_of<int64_t>() { return Dtype::Int64; }
template <> constexpr Dtype dtype_of<int32_t>() { return Dtype::Int32; }
template <> constexpr Dtype dtype_of<uint8_t>() { return Dtype::UInt8; }
template <> constexpr Dtype dtype_of<int8_t>() { return Dtype::Int8; }
template <> constexpr Dtype dtype_of<bool>() { return Dtype::Bool; }

// A C-contiguous array in device memory, not owned.
struct DeviceView {
  void* data = nullptr;
  Shape shape;
  Dtype dtype = Dtype::Float32;
  int device = 0;

  int64_t numel() const;
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
};

// Device memory from the caching allocator, freed (back to the cache) with the object.
class DeviceArray {
 public:
  DeviceArray(Shape shape, Dtype dtype, int device);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  static std::shared_ptr<DeviceArray> empty(const Shape& shape, Dtype dtype, int device);
  static std::shared_ptr<DeviceArray> empty_like(const DeviceView& like);
  // Zero-filled (cudaMemsetAsync on the device's stream): for outputs that kernels
  // accumulate into.
  static std::shared_ptr<DeviceArray> zeros(const Shape& shape, Dtype dtype, int device);

  DeviceView view() const { return DeviceView{data_, shape_, dtype_, device_}; }
  const Shape& shape() const { return shape_; }
  Dtype dtype() const { return dtype_; }
  int device() const { return device_; }
  size_t nbytes() const;
  template <typename T>
  T* ptr() const { return static_cast<T*>(data_); }
  py::dict cuda_array_interface() const;

 private:
  void* data_ = nullptr;
  Shape shape_;
  Dtype dtype_;
  int device_;
};

// The array behind obj, checked: a TypeError naming op and name when obj is not a
// CUDA array or has a dtype kiln has no kernel for, a ValueError when it is not
// C-contiguous or carries a mask.
DeviceView view_of(py::handle obj, const char* op, const char* name);

// TypeError unless view has dtype `want`: "op: expected name of dtype float32, got int64".
void check_dtype(const DeviceView& view, Dtype want, const char* op, const char* name);

// ValueError unless both arrays live on one device: kernels run on one device's stream.
void check_same_device(const DeviceView& a, const DeviceView& b, const char* op);

// Calls f(T{}) with T = float or double, the view's dtype; TypeError for any other.
template <typename F>
void dispatch_float(const DeviceView& view, const char* op, const char* name, F&& f) {
  switch (view.dtype) {
    case Dtype::Float32: f(float{}); return;
    case Dtype::Float64: f(double{}); return;
    default:
      fail<TypeError>(op, ": expected ", name, " of dtype float32 or float64, got ",
                      dtype_label(view.dtype));
  }
}

// Registers DeviceArray as kiln._C_cuda.DeviceArray (called once by module.cpp).
void bind_device_array(py::module_& m);

}  // namespace kiln::cuda::bind
