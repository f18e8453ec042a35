// Optimizer updates and gradient clipping on lists of NumPy arrays, exposed as
// kiln.kernels.<rule>_step and kiln.kernels.grad_norms / scale_ / clamp_.
// One call walks a whole parameter group in place: every array is checked
// (dtype, shape against its parameter, contiguity, writability) before the
// GIL is released and any value changes.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/optim_checks.h"
#include "bindings/optim_steps.h"
#include "cpu/optim.h"

namespace kiln::bind {
namespace {

using optim::array_data;
using optim::add_slot;
using optim::BufferList;
using optim::check_distinct;
using optim::check_lengths;
using optim::entry;
using optim::indexed;
using optim::scalar_entry;
using optim::Slots;

// dispatch<float, double> for list[i] = a, which names the entry ("params[3]") only
// when it has to: in the error.
template <typename F>
void by_float_type(const py::array& a, const char* op, const char* list, size_t i, F&& f) {
  if (match_dtype<float>(a) == DtypeMatch::Yes) f(float{});
  else if (match_dtype<double>(a) == DtypeMatch::Yes) f(double{});
  else fail_dtype<float, double>(a, op, indexed(list, i).c_str());
}

template <typename T>
ParamSlot<T> make_slot(const char* op, size_t i, py::array& param, py::array& grad,
                       const std::vector<BufferList>& buffers, const py::sequence* steps,
                       const py::sequence* mu_products) {
  ParamSlot<T> s;
  s.param = array_data<T>(op, "params", i, param, nullptr, true);
  s.numel = static_cast<int64_t>(param.size());
  s.grad = array_data<T>(op, "grads", i, grad, &param, false);
  for (size_t k = 0; k < buffers.size(); ++k) {
    if (!buffers[k].arrays) continue;
    py::array buf = entry(*buffers[k].arrays, i, op, buffers[k].name);
    s.state[k] = array_data<T>(op, buffers[k].name, i, buf, &param, true);
  }
  if (steps) s.step = scalar_entry(*steps, i, op, "state_steps");
  if (mu_products) s.mu_product = scalar_entry(*mu_products, i, op, "mu_products");
  return s;
}

Slots gather(const char* op, const py::sequence& params, const py::sequence& grads,
             const std::vector<BufferList>& buffers, const py::sequence* steps,
             const py::sequence* mu_products = nullptr) {
  const size_t n = params.size();
  check_lengths(op, n, grads, buffers, steps, mu_products);
  Slots out;
  out.where.reserve(n);
  std::vector<std::pair<const void*, size_t>> seen;
  for (size_t i = 0; i < n; ++i) {
    py::array param = entry(params, i, op, "params");
    py::array grad = entry(grads, i, op, "grads");
    auto add = [&](auto tag) {
      using T = decltype(tag);
      add_slot(out, make_slot<T>(op, i, param, grad, buffers, steps, mu_products));
    };
    by_float_type(param, op, "params", i, add);
    if (param.size() > 0) seen.emplace_back(param.data(), i);
  }
  check_distinct(op, "params", seen);
  return out;
}

// The CPU's side of optim_steps.h: NumPy arrays, kernels on the host.
struct CpuSteps {
  static Slots gather(const char* op, const py::sequence& params, const py::sequence& grads,
                      const std::vector<BufferList>& buffers, const py::sequence* steps,
                      const py::sequence* mu_products = nullptr) {
    return bind::gather(op, params, grads, buffers, steps, mu_products);
  }
  static py::object like(const py::sequence& params, size_t i, const char* op) {
    py::array p = entry(params, i, op, "params");
    return py::array(p.dtype(), std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim()));
  }
  // f(slots) for both dtypes without the GIL.
  template <typename F>
  static void run(const Slots& s, F&& f) {
    py::gil_scoped_release nogil;
    if (!s.f32.empty()) f(s.f32);
    if (!s.f64.empty()) f(s.f64);
  }
  static std::string doc(const char*, const char* text) { return text; }
  KILN_OPTIM_FORWARD_STEPS(kiln)
};

// ------------------------------------------------------------------ clipping
// The tensors of a clipping call split by dtype, with each one's position.
template <bool Mutable>
struct TensorLists {
  using F = std::conditional_t<Mutable, float, const float>;
  using D = std::conditional_t<Mutable, double, const double>;
  std::vector<Span<F>> f32;
  std::vector<Span<D>> f64;
  std::vector<std::pair<bool, size_t>> where;
};

template <bool Mutable>
TensorLists<Mutable> spans(const py::sequence& tensors, const char* op) {
  TensorLists<Mutable> out;
  std::vector<std::pair<const void*, size_t>> seen;
  for (size_t i = 0; i < tensors.size(); ++i) {
    py::array a = entry(tensors, i, op, "tensors");
    by_float_type(a, op, "tensors", i, [&](auto tag) {
      using T = decltype(tag);
      T* data_ptr = array_data<T>(op, "tensors", i, a, nullptr, Mutable);
      auto& list = [&]() -> auto& {
        if constexpr (std::is_same_v<T, float>) return out.f32;
        else return out.f64;
      }();
      out.where.emplace_back(std::is_same_v<T, double>, list.size());
      list.push_back({data_ptr, static_cast<int64_t>(a.size())});
    });
    if (Mutable && a.size() > 0) seen.emplace_back(a.data(), i);
  }
  check_distinct(op, "tensors", seen);
  return out;
}

py::tuple grad_norms_py(const py::sequence& tensors, double norm_type) {
  const char* op = "grad_norms";
  const TensorLists<false> t = spans<false>(tensors, op);
  std::vector<double> n32, n64, norms;
  double total;
  {
    py::gil_scoped_release nogil;
    n32 = tensor_norms<float>(t.f32, norm_type);
    n64 = tensor_norms<double>(t.f64, norm_type);
    for (const auto& [f64, k] : t.where) norms.push_back(f64 ? n64[k] : n32[k]);
    total = vector_norm(norms, norm_type);
  }
  py::list each;
  for (double v : norms) each.append(v);
  return py::make_tuple(total, each);
}

void scale_py(const py::sequence& tensors, double factor) {
  TensorLists<true> t = spans<true>(tensors, "scale_");
  py::gil_scoped_release nogil;
  scale_<float>(t.f32, factor);
  scale_<double>(t.f64, factor);
}

void clamp_py(const py::sequence& tensors, double min, double max) {
  TensorLists<true> t = spans<true>(tensors, "clamp_");
  if (min > max) fail("clamp_: min ", min, " is larger than max ", max);
  py::gil_scoped_release nogil;
  clamp_<float>(t.f32, min, max);
  clamp_<double>(t.f64, min, max);
}

}  // namespace

void bind_optim(py::module_& m) {
  optim::bind_steps<CpuSteps>(m);
  m.def("grad_norms", &grad_norms_py, py::arg("tensors"), py::arg("norm_type"),
        R"doc(Returns (total, [norm of each tensor]) as torch.nn.utils.get_total_norm does.

tensors: list of float32/float64 arrays. norm_type: q > 0, 0 (count of nonzeros), inf
(max |x|) or -inf (min |x|); total = norm of the per-tensor norms. Sums accumulate in
double over fixed blocks, so the result does not depend on the thread count.)doc");
  m.def("scale_", &scale_py, py::arg("tensors"), py::arg("factor"),
        "Multiplies every array of the list by factor, in place.");
  m.def("clamp_", &clamp_py, py::arg("tensors"), py::arg("min"), py::arg("max"),
        "Clamps every array of the list to [min, max], in place (NaN stays NaN).");
}

}  // namespace kiln::bind
