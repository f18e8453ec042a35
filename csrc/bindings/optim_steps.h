// The optimizer steps' bindings, written once for both backends: bindings/optim.cpp
// (NumPy arrays, kiln._C) and bindings/cuda/optim.cpp (CUDA arrays, kiln._C_cuda) bind
// the same Python names, arguments, options and lists. A backend B provides
//   B::gather(op, params, grads, buffers, steps, mu_products)
//                          the group's Slots, every array checked (dtype, shape
//                          against its parameter, ...) before anything changes
//   B::like(params, i, op) a new array like params[i] (SGD's first momentum buffer)
//   B::run(slots, f)       f(slots of T) for each dtype present, GIL released
//   B::<rule>_step         the backend's kernels, as static member templates
//                          (KILN_OPTIM_FORWARD_STEPS(namespace) writes them)
//   B::doc(name, text)     the docstring of _C.<name>
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "bindings/optim_checks.h"
#include "cpu/optim.h"

// Inside a backend's struct: its eight kernels, those of namespace NS, as static member
// templates B::sgd_step ... B::radam_step.
#define KILN_OPTIM_FORWARD_STEP(kernel, Options, NS)                                       \
  template <typename T>                                                                  \
  static void kernel(const char* op, const std::vector<ParamSlot<T>>& s, const Options& o) { \
    NS::kernel<T>(op, s, o);                                                             \
  }
#define KILN_OPTIM_FORWARD_STEPS(NS) KILN_OPTIM_RULES(KILN_OPTIM_FORWARD_STEP, NS)

namespace kiln::bind::optim {

namespace py = pybind11;

template <typename B>
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
        b = B::like(params, i, op);
        fresh.push_back(i);
      }
      buffers.append(b);
    }
  }
  const py::sequence bufs(buffers);
  Slots s = B::gather(op, params, grads,
                      {{"momentum_buffers", momentum != 0 ? &bufs : nullptr}}, nullptr);
  for (size_t i : fresh) {
    const auto [f64, k] = s.where[i];
    if (f64) s.f64[k].fresh = true;
    else s.f32[k].fresh = true;
  }
  B::run(s, [&](const auto& slots) { B::sgd_step(op, slots, o); });
  return buffers;
}

template <typename B>
void adagrad_step_py(const py::sequence& params, const py::sequence& grads,
                     const py::sequence& state_sums, const py::sequence& state_steps, double lr,
                     double lr_decay, double weight_decay, double eps, bool maximize) {
  const char* op = "adagrad_step";
  const AdagradOptions o{lr, lr_decay, weight_decay, eps, maximize};
  Slots s = B::gather(op, params, grads, {{"state_sums", &state_sums}}, &state_steps);
  B::run(s, [&](const auto& slots) { B::adagrad_step(op, slots, o); });
}

template <typename B>
void rmsprop_step_py(const py::sequence& params, const py::sequence& grads,
                     const py::sequence& square_avgs, const py::sequence& grad_avgs,
                     const py::sequence& momentum_buffers, const py::sequence& state_steps,
                     double lr, double alpha, double eps, double weight_decay, double momentum,
                     bool centered, bool maximize) {
  const char* op = "rmsprop_step";
  const RmspropOptions o{lr, alpha, eps, weight_decay, momentum, centered, maximize};
  Slots s = B::gather(op, params, grads,
                      {{"square_avgs", &square_avgs},
                       {"grad_avgs", centered ? &grad_avgs : nullptr},
                       {"momentum_buffers", momentum > 0 ? &momentum_buffers : nullptr}},
                      &state_steps);
  B::run(s, [&](const auto& slots) { B::rmsprop_step(op, slots, o); });
}

template <typename B>
void adam_step_py(const py::sequence& params, const py::sequence& grads,
                  const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                  const py::sequence& max_exp_avg_sqs, const py::sequence& state_steps,
                  double lr, double beta1, double beta2, double eps, double weight_decay,
                  bool amsgrad, bool maximize, bool decoupled_weight_decay) {
  const char* op = decoupled_weight_decay ? "adamw_step" : "adam_step";
  const AdamOptions o{lr, beta1, beta2, eps, weight_decay, amsgrad, maximize,
                      decoupled_weight_decay};
  Slots s = B::gather(op, params, grads,
                      {{"exp_avgs", &exp_avgs},
                       {"exp_avg_sqs", &exp_avg_sqs},
                       {"max_exp_avg_sqs", amsgrad ? &max_exp_avg_sqs : nullptr}},
                      &state_steps);
  B::run(s, [&](const auto& slots) { B::adam_step(op, slots, o); });
}

template <typename B>
void adadelta_step_py(const py::sequence& params, const py::sequence& grads,
                      const py::sequence& square_avgs, const py::sequence& acc_deltas,
                      const py::sequence& state_steps, double lr, double rho, double eps,
                      double weight_decay, bool maximize) {
  const char* op = "adadelta_step";
  const AdadeltaOptions o{lr, rho, eps, weight_decay, maximize};
  Slots s = B::gather(op, params, grads,
                      {{"square_avgs", &square_avgs}, {"acc_deltas", &acc_deltas}}, &state_steps);
  B::run(s, [&](const auto& slots) { B::adadelta_step(op, slots, o); });
}

template <typename B>
void adamax_step_py(const py::sequence& params, const py::sequence& grads,
                    const py::sequence& exp_avgs, const py::sequence& exp_infs,
                    const py::sequence& state_steps, double lr, double beta1, double beta2,
                    double eps, double weight_decay, bool maximize) {
  const char* op = "adamax_step";
  const AdamaxOptions o{lr, beta1, beta2, eps, weight_decay, maximize};
  Slots s = B::gather(op, params, grads, {{"exp_avgs", &exp_avgs}, {"exp_infs", &exp_infs}},
                      &state_steps);
  B::run(s, [&](const auto& slots) { B::adamax_step(op, slots, o); });
}

template <typename B>
void nadam_step_py(const py::sequence& params, const py::sequence& grads,
                   const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                   const py::sequence& mu_products, const py::sequence& state_steps, double lr,
                   double beta1, double beta2, double eps, double weight_decay,
                   double momentum_decay, bool maximize, bool decoupled_weight_decay) {
  const char* op = "nadam_step";
  const NadamOptions o{lr,           beta1,          beta2,   eps, weight_decay,
                       momentum_decay, maximize, decoupled_weight_decay};
  Slots s = B::gather(op, params, grads,
                      {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}}, &state_steps,
                      &mu_products);
  B::run(s, [&](const auto& slots) { B::nadam_step(op, slots, o); });
}

template <typename B>
void radam_step_py(const py::sequence& params, const py::sequence& grads,
                   const py::sequence& exp_avgs, const py::sequence& exp_avg_sqs,
                   const py::sequence& state_steps, double lr, double beta1, double beta2,
                   double eps, double weight_decay, bool maximize, bool decoupled_weight_decay) {
  const char* op = "radam_step";
  const RadamOptions o{lr, beta1, beta2, eps, weight_decay, maximize, decoupled_weight_decay};
  Slots s = B::gather(op, params, grads,
                      {{"exp_avgs", &exp_avgs}, {"exp_avg_sqs", &exp_avg_sqs}}, &state_steps);
  B::run(s, [&](const auto& slots) { B::radam_step(op, slots, o); });
}

// Binds the eight steps of backend B into m.
template <typename B>
void bind_steps(py::module_& m) {
  m.def("sgd_step", &sgd_step_py<B>, py::arg("params"), py::arg("grads"),
        py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
        py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
        B::doc("sgd_step",
               R"doc(One SGD step over a parameter group, in place (torch.optim.SGD's rule).

params, grads: lists of C-contiguous float32/float64 arrays, grads[i] of params[i]'s
shape and dtype. momentum_buffers: one per parameter when momentum != 0, None for a
parameter's first step (a buffer is allocated and set to its gradient, dampening not
applied); ignored when momentum == 0. Returns the momentum buffers (a new list, the
allocated ones included; empty when momentum == 0).)doc").c_str());
  m.def("adagrad_step", &adagrad_step_py<B>, py::arg("params"), py::arg("grads"),
        py::arg("state_sums"), py::arg("state_steps"), py::arg("lr"), py::arg("lr_decay"),
        py::arg("weight_decay"), py::arg("eps"), py::arg("maximize"),
        B::doc("adagrad_step",
               R"doc(One Adagrad step over a parameter group, in place (torch.optim.Adagrad's rule).

params, grads, state_sums: lists of arrays of matching shapes and dtype. state_steps:
one float32 array of one element per parameter, incremented before use.)doc").c_str());
  m.def("rmsprop_step", &rmsprop_step_py<B>, py::arg("params"), py::arg("grads"),
        py::arg("square_avgs"), py::arg("grad_avgs"), py::arg("momentum_buffers"),
        py::arg("state_steps"), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("momentum"), py::arg("centered"), py::arg("maximize"),
        B::doc("rmsprop_step",
               R"doc(One RMSprop step over a parameter group, in place (torch.optim.RMSprop's rule).

params, grads, square_avgs: lists of arrays of matching shapes and dtype; grad_avgs is
read only when centered and momentum_buffers only when momentum > 0 (else pass []).
state_steps: one float32 array of one element per parameter, incremented.)doc").c_str());
  m.def("adam_step", &adam_step_py<B>, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"), py::arg("state_steps"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("amsgrad"), py::arg("maximize"), py::arg("decoupled_weight_decay"),
        B::doc("adam_step",
               R"doc(One Adam (or AdamW, decoupled_weight_decay=True) step over a parameter group,
in place (torch.optim.Adam's rule, bias-corrected).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype;
max_exp_avg_sqs is read only when amsgrad (else pass []). state_steps: one float32
array of one element per parameter, incremented before the bias corrections.)doc").c_str());
  m.def("adadelta_step", &adadelta_step_py<B>, py::arg("params"), py::arg("grads"),
        py::arg("square_avgs"), py::arg("acc_deltas"), py::arg("state_steps"), py::arg("lr"),
        py::arg("rho"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        B::doc("adadelta_step",
               R"doc(One Adadelta step over a parameter group, in place
(torch.optim.Adadelta's rule).

params, grads, square_avgs, acc_deltas: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented.)doc").c_str());
  m.def("adamax_step", &adamax_step_py<B>, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_infs"), py::arg("state_steps"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        B::doc("adamax_step",
               R"doc(One Adamax step over a parameter group, in place (torch.optim.Adamax's rule).

params, grads, exp_avgs, exp_infs: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented before the
bias correction.)doc").c_str());
  m.def("nadam_step", &nadam_step_py<B>, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("mu_products"), py::arg("state_steps"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum_decay"), py::arg("maximize"), py::arg("decoupled_weight_decay"),
        B::doc("nadam_step",
               R"doc(One NAdam step over a parameter group, in place (torch.optim.NAdam's rule).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype.
mu_products and state_steps: one float32 array of one element per parameter each, updated
(the product of the momentum coefficients; the step counter).)doc").c_str());
  m.def("radam_step", &radam_step_py<B>, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::arg("state_steps"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("maximize"),
        py::arg("decoupled_weight_decay"),
        B::doc("radam_step",
               R"doc(One RAdam step over a parameter group, in place (torch.optim.RAdam's rule,
rectified once the variance estimate is tractable).

params, grads, exp_avgs, exp_avg_sqs: lists of arrays of matching shapes and dtype.
state_steps: one float32 array of one element per parameter, incremented.)doc").c_str());
}

}  // namespace kiln::bind::optim
