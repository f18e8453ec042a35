// Optimizer updates and gradient clipping on lists of NumPy arrays, exposed as
// kiln.kernels.<rule>_step and kiln.kernels.grad_norms / scale_ / clamp_.
// One call walks a whole parameter group in place: every array is checked
// (dtype, shape against its parameter, contiguity, writability) before the
// GIL is released and any value changes.
#include <algorithm>
#include <utility>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "bindings/optim_checks.h"
#include "cpu/optim.h"

namespace kiln::bind {
namespace {

// The i-th entry of a list argument, which must be an ndarray.
py::array entry(const py::sequence& list, size_t i, const char* op, const char* name) {
  py::object item = list[i];
  if (!py::isinstance<py::array>(item))
    fail<TypeError>(op, ": expected ", name, "[", i, "] to be a NumPy array, got ",
                    py::str(py::type::of(item).attr("__name__")).cast<std::string>());
  return py::reinterpret_borrow<py::array>(item);
}

std::string indexed(const char* name, size_t i) {
  return std::string(name) + "[" + std::to_string(i) + "]";
}

using optim::check_distinct;

struct BufferList {
  const char* name;
  const py::sequence* arrays;  // null: the options do not use this buffer
};

// A group's slots split by dtype (one kernel walk per dtype), and where each
// parameter went: (is float64, position).
struct Slots {
  std::vector<ParamSlot<float>> f32;
  std::vector<ParamSlot<double>> f64;
  std::vector<std::pair<bool, size_t>> where;
};

// The data of list[i] as T*, checked: dtype T, C-contiguous, writable when the
// kernel writes it, and `like`'s shape when given. The common case is decided
// from the array struct alone (a group of 65 tensors costs microseconds, not
// tens of them); anything else goes through arrays.h's checks, which name the
// entry in the error.
template <typename T>
T* array_data(const char* op, const char* list, size_t i, py::array& a, const py::array* like,
              bool writable) {
  using api = py::detail::npy_api;
  const int need = api::NPY_ARRAY_C_CONTIGUOUS_ | (writable ? api::NPY_ARRAY_WRITEABLE_ : 0);
  const auto* proxy = py::detail::array_proxy(a.ptr());
  const bool same_shape = !like || (a.ndim() == like->ndim() &&
                                    std::equal(a.shape(), a.shape() + a.ndim(), like->shape()));
  if (proxy->descr == canonical_descr<T>() && (proxy->flags & need) == need && same_shape)
    return static_cast<T*>(const_cast<void*>(a.data()));
  const std::string name = indexed(list, i);
  T* data_ptr = writable ? mutable_data<T>(a, op, name.c_str())
                         : const_cast<T*>(data<T>(a, op, name.c_str()));
  if (!same_shape)
    fail(op, ": ", name, " has shape ", shape_str(shape_of(a)), " but params[", i,
         "] has shape ", shape_str(shape_of(*like)));
  return data_ptr;
}

// dispatch<float, double> for list[i] = a, which names the entry ("params[3]") only
// when it has to: in the error.
template <typename F>
void by_float_type(const py::array& a, const char* op, const char* list, size_t i, F&& f) {
  if (match_dtype<float>(a) == DtypeMatch::Yes) f(float{});
  else if (match_dtype<double>(a) == DtypeMatch::Yes) f(double{});
  else fail_dtype<float, double>(a, op, indexed(list, i).c_str());
}

// A list of float32 one-element arrays (state_steps, mu_products): entry i's data.
float* scalar_entry(const py::sequence& list, size_t i, const char* op, const char* name) {
  py::array a = entry(list, i, op, name);
  float* data = array_data<float>(op, name, i, a, nullptr, true);
  if (a.size() != 1)
    fail(op, ": ", name, "[", i, "] must hold one value, got shape ", shape_str(shape_of(a)));
  return data;
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
  auto check_len = [&](const py::sequence& list, const char* name) {
    if (list.size() != n)
      fail(op, ": got ", n, " params but ", list.size(), " ", name);
  };
  check_len(grads, "grads");
  for (const BufferList& b : buffers)
    if (b.arrays) check_len(*b.arrays, b.name);
  if (steps) check_len(*steps, "state_steps");
  if (mu_products) check_len(*mu_products, "mu_products");
  Slots out;
  out.where.reserve(n);
  std::vector<std::pair<const void*, size_t>> seen;
  for (size_t i = 0; i < n; ++i) {
    py::array param = entry(params, i, op, "params");
    py::array grad = entry(grads, i, op, "grads");
    auto add = [&](auto tag) {
      using T = decltype(tag);
      auto& list = [&]() -> std::vector<ParamSlot<T>>& {
        if constexpr (std::is_same_v<T, float>) return out.f32;
        else return out.f64;
      }();
      out.where.emplace_back(std::is_same_v<T, double>, list.size());
      list.push_back(make_slot<T>(op, i, param, grad, buffers, steps, mu_products));
    };
    by_float_type(param, op, "params", i, add);
    if (param.size() > 0) seen.emplace_back(param.data(), i);
  }
  check_distinct(op, "params", seen);
  return out;
}

// Runs kernel(op, slots, options) for both dtypes without the GIL.
template <typename Options, typename F32, typename F64>
void run(const char* op, const Slots& s, const Options& o, F32 f32, F64 f64) {
  py::gil_scoped_release nogil;
  if (!s.f32.empty()) f32(op, s.f32, o);
  if (!s.f64.empty()) f64(op, s.f64, o);
}

py::list sgd_step_py(const py::sequence& params, const py::sequence& grads,
                     const py::sequence& momentum_buffers, double lr, double momentum,
                     double dampening, double weight_decay, bool nesterov, bool maximize) {
  const char* op = "sgd_step";
  const SgdOptions o{lr, momentum, dampening, weight_decay, nesterov, maximize};
  py::list buffers;
  std::vector<size_t> fresh;
  if (momentum != 0) {
    if (momentum_buffers.size() != params.size())
      fail(op, ": got ", params.size(), " params but ", momentum_buffers.size(),
           " momentum_buffers");
    for (size_t i = 0; i < params.size(); ++i) {
      py::object b = momentum_buffers[i];
      if (b.is_none()) {
        py::array p = entry(params, i, op, "params");
        b = py::array(p.dtype(), std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim()));
        fresh.push_back(i);
      }
      buffers.append(b);
    }
  }
  const py::sequence bufs(buffers);
  Slots s = gather(op, params, grads, {{"momentum_buffers", momentum != 0 ? &bufs : nullptr}},
                   nullptr);
  for (size_t i : fresh) {
    const auto [f64, k] = s.where[i];
    if (f64) s.f64[k].fresh = true;
    else s.f32[k].fresh = true;
  }
  run(op, s, o, sgd_step<float>, sgd_step<double>);
  return buffers;
}

void adagrad_step_py(const py::sequence& params, const py::sequence& grads,
                     const py::sequence& state_sums, const py::sequence& state_steps, double lr,
                     double lr_decay, double weight_decay, double eps, bool maximize) {
  const char* op = "adagrad_step";
  const AdagradOptions o{lr, lr_decay, weight_decay, eps, maximize};
  Slots s = gather(op, params, grads, {{"state_sums", &state_sums}}, &state_steps);
  run(op, s, o, adagrad_step<float>, adagrad_step<double>);
}

void rmsprop_step_py(const py::sequence& params, const py::sequence& grads,
                     const py::sequence& square_avgs, const py::sequence& grad_avgs,
                     const py::sequence& momentum_buffers, const py::sequence& state_steps,
                     double lr, double alpha, double eps, double weight_decay, double momentum,
                     bool centered, bool maximize) {
  const char* op = "rmsprop_step";
  const RmspropOptions o{lr, alpha, eps, weight_decay, momentum, centered, maximize};
  Slots s = gather(op, params, grads,
                   {{"square_avgs", &square_avgs},
                    {"grad_avgs", centered ? &grad_avgs : nullptr},
                    {"momentum_buffers", momentum > 0 ? &momentum_buffers : nullptr}},
                   &state_steps);
  run(op, s, o, rmsprop_step<float>, rmsprop_step<double>);
}

void adam_step_py(const py::sequence& params, const py::sequence& grads,
                  const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                  const py::sequence& max_exp_avg_sqs, const py::sequence& state_steps,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  bool amsgrad, bool maximize, bool decoupled_weight_decay) {
  const char* op = decoupled_weight_decay ? "adamw_step" : "adam_step";
  const AdamOptions o{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                      decoupled_weight_decay};
  Slots s = gather(op, params, grads,
                   {{"exp_avgs", &exp_avgs},
                    {"exp_avg_sqs", &exp_avg_sqs},
                    {"max_exp_avg_sqs", amsgrad ? &max_exp_avg_sqs : nullptr}},
                   &state_steps);
  run(op, s, o, adam_step<float>, adam_step<double>);
}

void adadelta_step_py(const py::sequence& params, const py::sequence& grads,
                      const py::sequence& square_avgs, const py::sequence& acc_deltas,
                      const py::sequence& state_steps, double lr, double rho, double eps,
                      double weight_decay, bool maximize) {
  const char* op = "adadelta_step";
  const AdadeltaOptions o{lr, rho, eps, weight_decay, maximize};
  Slots s = gather(op, params, grads, {{"square_avgs", &square_avgs}, {"acc_deltas", &acc_deltas}},
                   &state_steps);
  run(op, s, o, adadelta_step<float>, adadelta_step<double>);
}

void adamax_step_py(const py::sequence& params, const py::sequence& grads,
                    const py::sequence& exp_avgs, const py::sequence& exp_infs,
                    const py::sequence& state_steps, double lr, double beta1, double beta2,
                    double eps, double weight_decay, bool maximize) {
  const char* op = "adamax_step";
  const AdamaxOptions o{lr, beta1, beta2, eps, weight_decay, maximize};
  Slots s = gather(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_infs", &exp_infs}},
                   &state_steps);
  run(op, s, o, adamax_step<float>, adamax_step<double>);
}

void nadam_step_py(const py::sequence& params, const py::sequence& grads,
                   const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                   const py::sequence& mu_products, const py::sequence& state_steps, double lr,
                   double beta1, double beta2, double eps, double weight_decay,
                   double momentum_decay, bool maximize, bool decoupled_weight_decay) {
  const char* op = "nadam_step";
  const NadamOptions o{lr,           beta1,          beta2,   eps, weight_decay,
                       momentum_decay, maximize, decoupled_weight_decay};
  Slots s = gather(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}},
                   &state_steps, &mu_products);
  run(op, s, o, nadam_step<float>, nadam_step<double>);
}

void radam_step_py(const py::sequence& params, const py::sequence& grads,
                   const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                   const py::sequence& state_steps, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool maximize, bool decoupled_weight_decay) {
  const char* op = "radam_step";
  const RadamOptions o{lr, beta1, beta2, eps, weight_decay, maximize, decoupled_weight_decay};
  Slots s = gather(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}},
                   &state_steps);
  run(op, s, o, radam_step<float>, radam_step<double>);
}

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
  m.def("sgd_step", &sgd_step_py, py::arg("params"), py::arg("grads"),
        py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
        py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
        R"doc(One SGD step over a parameter group, in place (torch.optim.SGD's rule).

params, grads: lists of C-contiguous float32/float64 arrays, grads[i] of params[i]'s
shape and dtype. momentum_buffers: one per parameter when momentum != 0, None for a
parameter's first step (a buffer is allocated and set to its gradient, dampening not
applied); ignored when momentum == 0. Returns the momentum buffers (a new list, the
allocated ones included; empty when momentum == 0).)doc");
  m.def("adagrad_step", &adagrad_step_py, py::arg("params"), py::arg("grads"),
        py::arg("state_sums"), py::arg("state_steps"), py::arg("lr"), py::arg("lr_decay"),
        py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"),
        R"doc(One Adagrad step over a parameter group, in place (torch.optim.Adagrad's rule).

params, grads, state_sums: lists of arrays of matching shapes and dtype. state_steps:
one float32 array of one element per parameter, incremented before use.)doc");
  m.def("rmsprop_step", &rmsprop_step_py, py::arg("params"), py::arg("grads"),
        py::arg("square_avgs"), py::arg("grad_avgs"), py::arg("momentum_buffers"),
        py::arg("state_steps"), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"),
        R"doc(One RMSprop step over a parameter group, in place (torch.optim.RMSprop's rule).

params, grads, square_avgs: lists of arrays of matching shapes and dtype; grad_avgs is
read only when centered and momentum_buffers only when momentum > 0 (else pass []).
state_steps: one float32 array of one element per parameter, incremented.)doc");
  m.def("adam_step", &adam_step_py, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"), py::arg("state_steps"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
        py::arg("decoupled_weight_decay"),
        R"doc(One Adam (or AdamW, decoupled_weight_decay=True) step over a parameter group,
in place (torch.optim.Adam's rule, bias-corrected).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype;
max_exp_avg_sqs is read only when amsgrad (else pass []). state_steps: one float32
array of one element per parameter, incremented before the bias corrections.)doc");
  m.def("adadelta_step", &adadelta_step_py, py::arg("params"), py::arg("grads"),
        py::arg("square_avgs"), py::arg("acc_deltas"), py::arg("state_steps"), py::arg("lr"),
        py::arg("rho"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        R"doc(One Adadelta step over a parameter group, in place (torch.optim.Adadelta's rule).

params, grads, square_avgs, acc_deltas: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented.)doc");
  m.def("adamax_step", &adamax_step_py, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_infs"), py::arg("state_steps"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        R"doc(One Adamax step over a parameter group, in place (torch.optim.Adamax's rule).

params, grads, exp_avgs, exp_infs: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented before the
bias correction.)doc");
  m.def("nadam_step", &nadam_step_py, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("mu_products"), py::arg("state_steps"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum_decay"), py::arg("maximize"), py::arg("decoupled_weight_decay"),
        R"doc(One NAdam step over a parameter group, in place (torch.optim.NAdam's rule).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype.
mu_products and state_steps: one float32 array of one element per parameter each, updated
(the product of the momentum coefficients; the step counter).)doc");
  m.def("radam_step", &radam_step_py, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("state_steps"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        py::arg("decoupled_weight_decay"),
        R"doc(One RAdam step over a parameter group, in place (torch.optim.RAdam's rule,
rectified once the variance estimate is tractable).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented.)doc");
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
