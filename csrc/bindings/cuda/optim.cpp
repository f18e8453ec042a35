// kiln._C_cuda optimizer steps (sgd_step ... radam_step, bound by optim_steps.h as on
// the CPU) and gradient clipping (grad_norms, scale_, clamp_): the twins of
// bindings/optim.cpp's on lists of CUDA arrays (float32/float64, C-contiguous, one
// device), with the same checks and results. The steps' counters (state_steps,
// mu_products) are float32 NumPy arrays, on the host as on the CPU: the kernels take
// the scalars they give as arguments, so nothing waits for the device.
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/optim_checks.h"
#include "bindings/optim_steps.h"
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

// ----------------------------------------------------------------------- steps
namespace ko = kiln::bind::optim;

// list[i] as an array of param's dtype, device and shape (ValueError naming both).
template <typename T>
T* like_param(const py::sequence& list, size_t i, const DeviceView& param, const char* op,
              const char* name) {
  const std::string entry = ko::indexed(name, i);
  const DeviceView v = operand(list[i], param, op, entry.c_str());
  if (v.shape != param.shape)
    fail(op, ": ", entry, " has shape ", shape_str(v.shape), " but params[", i, "] has shape ",
         shape_str(param.shape));
  return v.ptr<T>();
}

// The CUDA side of optim_steps.h: CUDA arrays, kernels on their device's stream.
struct CudaSteps {
  static ko::Slots gather(const char* op, const py::sequence& params, const py::sequence& grads,
                          const std::vector<ko::BufferList>& buffers, const py::sequence* steps,
                          const py::sequence* mu_products = nullptr) {
    const size_t n = params.size();
    ko::check_lengths(op, n, grads, buffers, steps, mu_products);
    ko::Slots out;
    out.device = current_device();
    std::vector<std::pair<const void*, size_t>> seen;
    DeviceView first;
    for (size_t i = 0; i < n; ++i) {
      const std::string name = ko::indexed("params", i);
      const DeviceView p = view_of(params[i], op, name.c_str());
      if (i == 0) first = p;
      check_same_device(first, p, op);
      out.device = p.device;
      dispatch_float(p, op, name.c_str(), [&](auto zero) {
        using T = decltype(zero);
        ParamSlot<T> s;
        s.param = p.ptr<T>();
        s.numel = p.numel();
        s.grad = like_param<T>(grads, i, p, op, "grads");
        for (size_t k = 0; k < buffers.size(); ++k)
          if (buffers[k].arrays)
            s.state[k] = like_param<T>(*buffers[k].arrays, i, p, op, buffers[k].name);
        if (steps) s.step = ko::scalar_entry(*steps, i, op, "state_steps");
        if (mu_products) s.mu_product = ko::scalar_entry(*mu_products, i, op, "mu_products");
        ko::add_slot(out, s);
      });
      if (p.numel() > 0) seen.emplace_back(p.data, i);
    }
    ko::check_distinct(op, "params", seen);
    return out;
  }
  static py::object like(const py::sequence& params, size_t i, const char* op) {
    const std::string name = ko::indexed("params", i);
    return py::cast(DeviceArray::empty_like(view_of(params[i], op, name.c_str())));
  }
  template <typename F>
  static void run(const ko::Slots& s, F&& f) {
    launch_on(s.device, [&] {
      if (!s.f32.empty()) f(s.f32);
      if (!s.f64.empty()) f(s.f64);
    });
  }
  static std::string doc(const char* name, const char*) { return twin_doc(name); }
  KILN_OPTIM_FORWARD_STEPS(kc)
};

// -------------------------------------------------------------------- clipping
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
  kiln::bind::optim::bind_steps<CudaSteps>(m);
  m.def("grad_norms", &grad_norms_py, py::arg("tensors"), py::arg("norm_type"),
        twin_doc("grad_norms").c_str());
  m.def("scale_", &scale_py, py::arg("tensors"), py::arg("factor"), twin_doc("scale_").c_str());
  m.def("clamp_", &clamp_py, py::arg("tensors"), py::arg("min"), py::arg("max"),
        twin_doc("clamp_").c_str());
}

}  // namespace kiln::cuda::bind
