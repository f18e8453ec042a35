// What the optimizer and clipping bindings of both backends share (bindings/optim.cpp,
// bindings/cuda/optim.cpp): the distinct-arrays check and the reading of NumPy list
// entries (the CPU's arrays; the step counters and mu_products of both, which live on
// the host).
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings/arrays.h"
#include "common/check.h"
#include "cpu/optim.h"

namespace kiln::bind::optim {

// Fails if two entries of a list updated in place share their data: they would be
// updated twice (and race). seen: (data, index) pairs.
inline void check_distinct(const char* op, const char* list,
                           std::vector<std::pair<const void*, size_t>>& seen) {
  std::sort(seen.begin(), seen.end());
  for (size_t k = 1; k < seen.size(); ++k)
    if (seen[k].first == seen[k - 1].first)
      fail(op, ": ", list, "[", std::min(seen[k].second, seen[k - 1].second), "] and ", list,
           "[", std::max(seen[k].second, seen[k - 1].second), "] are the same array");
}

struct BufferList {
  const char* name;
  const py::sequence* arrays;  // null: the options do not use this buffer
};

// A group's slots split by dtype (one kernel call per dtype), where each parameter
// went: (is float64, position), and the device of its arrays (CUDA).
struct Slots {
  std::vector<ParamSlot<float>> f32;
  std::vector<ParamSlot<double>> f64;
  std::vector<std::pair<bool, size_t>> where;
  int device = 0;
};

// Appends slot to the list of its dtype, recording where it went.
template <typename T>
void add_slot(Slots& s, const ParamSlot<T>& slot) {
  auto& list = [&]() -> std::vector<ParamSlot<T>>& {
    if constexpr (std::is_same_v<T, float>) return s.f32;
    else return s.f64;
  }();
  s.where.emplace_back(std::is_same_v<T, double>, list.size());
  list.push_back(slot);
}

// Every list of a step call has one entry per parameter (n of them); a buffer list
// the options do not use (null) is not looked at.
inline void check_lengths(const char* op, size_t n, const py::sequence& grads,
                          const std::vector<BufferList>& buffers, const py::sequence* steps,
                          const py::sequence* mu_products) {
  auto check_len = [&](const py::sequence& list, const char* name) {
    if (list.size() != n) fail(op, ": got ", n, " params but ", list.size(), " ", name);
  };
  check_len(grads, "grads");
  for (const BufferList& b : buffers)
    if (b.arrays) check_len(*b.arrays, b.name);
  if (steps) check_len(*steps, "state_steps");
  if (mu_products) check_len(*mu_products, "mu_products");
}

// The i-th entry of a list argument, which must be an ndarray.
inline py::array entry(const py::sequence& list, size_t i, const char* op, const char* name) {
  py::object item = list[i];
  if (!py::isinstance<py::array>(item))
    fail<TypeError>(op, ": expected ", name, "[", i, "] to be a NumPy array, got ",
                    py::str(py::type::of(item).attr("__name__")).cast<std::string>());
  return py::reinterpret_borrow<py::array>(item);
}

inline std::string indexed(const char* name, size_t i) {
  return std::string(name) + "[" + std::to_string(i) + "]";
}

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

// A list of float32 one-element arrays (state_steps, mu_products): entry i's data.
inline float* scalar_entry(const py::sequence& list, size_t i, const char* op, const char* name) {
  py::array a = entry(list, i, op, name);
  float* data = array_data<float>(op, name, i, a, nullptr, true);
  if (a.size() != 1)
    fail(op, ": ", name, "[", i, "] must hold one value, got shape ", shape_str(shape_of(a)));
  return data;
}

}  // namespace kiln::bind::optim
