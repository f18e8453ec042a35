// kiln._C_cuda gradient clipping: grad_norms, scale_ and clamp_, the twins of
// bindings/optim.cpp's on lists of CUDA arrays (float32/float64, C-contiguous, one
// device), with the same checks and results. The optimizer steps have no twin yet.
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/optim_checks.h"
#include "cuda/optim.h"

namespace kiln::cuda::bind {
namespace {

namespace kc = kiln::cuda;

// The list's arrays split by dtype, as Spans (T const for reading), all on one
// device; `distinct`: no two entries share their data (they are written).
template <bool Mutable>
struct TensorLists {
  std::vector<Span<std::conditional_t<Mutable, float, const float>>> f32;
  std::vector<Span<std::conditional_t<Mutable, double, const double>>> f64;
  std::vector<std::pair<bool, size_t>> where;  // (is float64, position) per entry
  int device = -1;
};

template <bool Mutable>
TensorLists<Mutable> spans(const py::sequence& tensors, const char* op) {
  TensorLists<Mutable> out;
  std::vector<std::pair<const void*, size_t>> seen;
  std::vector<DeviceView> views;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string name = "tensors[" + std::to_string(i) + "]";
    const DeviceView v = view_of(tensors[i], op, name.c_str());
    if (!views.empty()) check_same_device(v, views.front(), op);
    views.push_back(v);
    dispatch_float(v, op, name.c_str(), [&](auto zero) {
      using T = decltype(zero);
      auto& list = [&]() -> auto& {
        if constexpr (std::is_same_v<T, float>) return out.f32;
        else return out.f64;
      }();
      out.where.emplace_back(std::is_same_v<T, double>, list.size());
      list.push_back({v.ptr<T>(), v.numel()});
    });
    if (Mutable && v.numel() > 0) seen.emplace_back(v.data, i);
  }
  kiln::bind::optim::check_distinct(op, "tensors", seen);
  out.device = views.empty() ? current_device() : views.front().device;
  return out;
}

py::tuple grad_norms_py(const py::sequence& tensors, double norm_type) {
  const char* op = "grad_norms";
  const TensorLists<false> t = spans<false>(tensors, op);
  std::vector<double> norms;
  double total = 0;
  launch_on(t.device, [&] {
    const std::vector<double> n32 = kc::tensor_norms<float>(t.f32, norm_type);
    const std::vector<double> n64 = kc::tensor_norms<double>(t.f64, norm_type);
    for (const auto& [f64, k] : t.where) norms.push_back(f64 ? n64[k] : n32[k]);
    total = vector_norm(norms, norm_type);
  });
  return py::make_tuple(total, py::cast(norms));
}

void scale_py(const py::sequence& tensors, double factor) {
  const TensorLists<true> t = spans<true>(tensors, "scale_");
  launch_on(t.device, [&] {
    kc::scale_<float>(t.f32, factor);
    kc::scale_<double>(t.f64, factor);
  });
}

void clamp_py(const py::sequence& tensors, double min, double max) {
  const TensorLists<true> t = spans<true>(tensors, "clamp_");
  if (min > max) fail("clamp_: min ", min, " is larger than max ", max);
  launch_on(t.device, [&] {
    kc::clamp_<float>(t.f32, min, max);
    kc::clamp_<double>(t.f64, min, max);
  });
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("grad_norms", &grad_norms_py, py::arg("tensors"), py::arg("norm_type"),
        twin_doc("grad_norms").c_str());
  m.def("scale_", &scale_py, py::arg("tensors"), py::arg("factor"), twin_doc("scale_").c_str());
  m.def("clamp_", &clamp_py, py::arg("tensors"), py::arg("min"), py::arg("max"),
        twin_doc("clamp_").c_str());
}

}  // namespace kiln::cuda::bind
