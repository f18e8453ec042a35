// DeviceArray and the reading of __cuda_array_interface__ (see device_array.h).
#include "bindings/cuda/device_array.h"

#include <cuda_runtime.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>

#include "cuda/runtime.h"

namespace kiln::cuda::bind {

namespace {

struct DtypeInfo {
  Dtype dtype;
  size_t itemsize;
  const char* label;
  const char* typestr;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::Float32, 4, "float32", "<f4"}, {Dtype::Float64, 8, "float64", "<f8"},
    {Dtype::Int64, 8, "int64", "<i8"},     {Dtype::Int32, 4, "int32", "<i4"},
    {Dtype::UInt8, 1, "uint8", "|u1"},     {Dtype::Int8, 1, "int8", "|i1"},
    {Dtype::Bool, 1, "bool", "|b1"},
};

const DtypeInfo& info(Dtype dtype) {
  for (const DtypeInfo& d : kDtypes)
    if (d.dtype == dtype) return d;
  fail<TypeError>("kiln._C_cuda: unknown dtype");
}

// The interface's typestr ("<f4", "=f4", "|u1", ...) as a Dtype; byte order '<',
// '=' or '|' (CUDA devices are little-endian), anything else a TypeError.
Dtype parse_typestr(const std::string& ts, const char* op, const char* name) {
  if (ts.size() >= 3 && (ts[0] == '<' || ts[0] == '=' || ts[0] == '|')) {
    const std::string body = ts.substr(1);
    for (const DtypeInfo& d : kDtypes)
      if (body == std::string(d.typestr).substr(1)) return d.dtype;
  }
  fail<TypeError>(op, ": ", name, " has dtype '", ts,
                  "', which kiln has no CUDA kernel for (float32, float64, int64, int32, "
                  "uint8, int8 or bool)");
}

int device_of_pointer(const void* ptr) {
  if (ptr == nullptr) return current_device();
  cudaPointerAttributes attrs{};
  KILN_CUDA_CHECK(cudaPointerGetAttributes(&attrs, ptr));
  return attrs.device;
}

}  // namespace

size_t itemsize(Dtype dtype) { return info(dtype).itemsize; }
const char* dtype_label(Dtype dtype) { return info(dtype).label; }
const char* typestr(Dtype dtype) { return info(dtype).typestr; }

int64_t DeviceView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

DeviceArray::DeviceArray(Shape shape, Dtype dtype, int device)
    : shape_(std::move(shape)), dtype_(dtype), device_(device) {
  for (int64_t s : shape_)
    KILN_CHECK(s >= 0, "DeviceArray: negative dimension in shape ", shape_str(shape_));
  const size_t bytes = nbytes();
  if (bytes > 0) data_ = device_malloc(bytes, device_);
}

DeviceArray::~DeviceArray() {
  if (data_ != nullptr) device_free(data_, device_);
}

size_t DeviceArray::nbytes() const {
  return static_cast<size_t>(view().numel()) * itemsize(dtype_);
}

std::shared_ptr<DeviceArray> DeviceArray::empty(const Shape& shape, Dtype dtype, int device) {
  return std::make_shared<DeviceArray>(shape, dtype, device);
}

std::shared_ptr<DeviceArray> DeviceArray::empty_like(const DeviceView& like) {
  return empty(like.shape, like.dtype, like.device);
}

std::shared_ptr<DeviceArray> DeviceArray::zeros(const Shape& shape, Dtype dtype, int device) {
  auto array = empty(shape, dtype, device);
  if (array->nbytes() > 0) {
    DeviceGuard guard(device);
    KILN_CUDA_CHECK(cudaMemsetAsync(array->data_, 0, array->nbytes(), stream(device)));
  }
  return array;
}

py::dict DeviceArray::cuda_array_interface() const {
  py::dict d;
  d["shape"] = py::tuple(py::cast(shape_));
  d["typestr"] = typestr(dtype_);
  d["data"] = py::make_tuple(reinterpret_cast<std::uintptr_t>(data_), false);
  d["strides"] = py::none();  // C-contiguous
  d["version"] = 3;
  return d;
}

DeviceView view_of(py::handle obj, const char* op, const char* name) {
  if (py::isinstance<DeviceArray>(obj)) return obj.cast<const DeviceArray&>().view();
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    fail<TypeError>(op, ": expected ", name,
                    " to be a CUDA array (an object with __cuda_array_interface__, such as a "
                    "CuPy array), got ", std::string(py::str(py::type::of(obj).attr("__name__"))));
  const py::dict cai = obj.attr("__cuda_array_interface__");
  DeviceView v;
  v.shape = cai["shape"].cast<Shape>();
  v.dtype = parse_typestr(cai["typestr"].cast<std::string>(), op, name);
  v.data = reinterpret_cast<void*>(cai["data"].cast<py::tuple>()[0].cast<std::uintptr_t>());
  if (cai.contains("mask") && !cai["mask"].is_none())
    fail(op, ": ", name, " is a masked CUDA array; kiln's kernels take plain arrays");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const Shape strides = cai["strides"].cast<Shape>();
    int64_t expected = static_cast<int64_t>(itemsize(v.dtype));
    for (size_t i = v.shape.size(); i-- > 0;) {
      if (v.shape[i] != 1 && strides[i] != expected)
        fail(op, ": ", name, " of shape ", shape_str(v.shape),
             " is not C-contiguous; kiln's CUDA kernels take contiguous arrays");
      expected *= v.shape[i];
    }
  }
  v.device = device_of_pointer(v.data);
  return v;
}

void check_dtype(const DeviceView& view, Dtype want, const char* op, const char* name) {
  if (view.dtype != want)
    fail<TypeError>(op, ": expected ", name, " of dtype ", dtype_label(want), ", got ",
                    dtype_label(view.dtype));
}

void check_same_device(const DeviceView& a, const DeviceView& b, const char* op) {
  if (a.device != b.device)
    fail(op, ": expected all arrays on one device, got cuda:", a.device, " and cuda:", b.device);
}

void bind_device_array(py::module_& m) {
  py::class_<DeviceArray, std::shared_ptr<DeviceArray>>(
      m, "DeviceArray",
      "A block of device memory from kiln's caching allocator with a shape and a dtype; "
      "CuPy wraps it without a copy through __cuda_array_interface__")
      .def_property_readonly("__cuda_array_interface__", &DeviceArray::cuda_array_interface)
      .def_property_readonly("shape", [](const DeviceArray& a) { return py::tuple(py::cast(a.shape())); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return dtype_label(a.dtype()); })
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("nbytes", &DeviceArray::nbytes)
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + shape_str(a.shape()) + ", dtype=" + dtype_label(a.dtype()) +
               ", device=cuda:" + std::to_string(a.device()) + ")";
      });
  m.def("empty", [](const Shape& shape, const std::string& dtype, int device) {
    for (const DtypeInfo& d : kDtypes)
      if (dtype == d.label) return DeviceArray::empty(shape, d.dtype, device);
    fail<TypeError>("empty: kiln has no CUDA arrays of dtype ", dtype);
  }, py::arg("shape"), py::arg("dtype"), py::arg("device"),
        "An uninitialised DeviceArray of the given shape and NumPy dtype name on a device");
}

}  // namespace kiln::cuda::bind
