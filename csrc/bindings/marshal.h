// The binding marshaller: every binding states its operands and outputs and
// hands the kernel a lambda; marshal::call does the rest, the same way for
// every op:
//
//   return marshal::call<float, double>(op,
//       in(x, "input"), in(w, "weight"), opt(bias, "bias"), out(g.output_shape()),
//       [&](auto* x, auto* w, auto* b, auto* y) { cpu::conv2d_forward(g, x, w, b, y); });
//
// 1. dispatch: the first operand (an in(), never an opt()) picks one of the
//    listed types D by its dtype, compared by value (arrays.h's match_dtype);
//    TypeError naming the op, the operand and the accepted dtypes otherwise.
//    With no types listed (call<>) every operand has a fixed dtype;
// 2. checks: each operand has its dtype (D for in/opt, U for in<U>/opt<U>); an
//    input that is not C-contiguous (a transposed or sliced view) is copied into a
//    C-contiguous array for the call, so Python hands views as they are; an absent
//    optional operand (None) becomes a null pointer; one the kernel updates in
//    place (opt_inout) must be C-contiguous, and writable when written;
// 3. outputs: a new array per out(shape) (dtype D, or U for out<U>), or None
//    and a null pointer for one not wanted (gradients nobody asked for);
// 4. the kernel runs on the raw pointers, in the order the operands and
//    outputs were listed, with the GIL released;
// 5. the result: the one output; or a tuple of the outputs, followed by the
//    kernel's return value when it returns one (a loss's total weight).
//
// Shapes and sizes are the binding's (or the kernel's own checks') business,
// decided before the call. Everything here is templates over the operand list:
// no copies of the data but of non-contiguous inputs, no std::function, no Python
// objects but those copies and the outputs.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "bindings/arrays.h"

namespace kiln::bind::marshal {

// The dtype the dispatch picks; operands and outputs without a fixed dtype take it.
struct Dispatched {};

// An array operand named `name` in errors; null `array`: an absent optional one.
template <typename T>
struct In {
  const py::array* array;
  const char* name;
};

template <typename T = Dispatched>
In<T> in(const py::array& a, const char* name) {
  return {&a, name};
}

// An optional operand: never the first, which decides the dtype.
template <typename T>
struct OptIn : In<T> {};

template <typename T = Dispatched>
OptIn<T> opt(const OptArray& a, const char* name) {
  return {{a ? &*a : nullptr, name}};
}

// An optional operand the kernel updates in place when `written` (batch norm's
// running statistics in training): a T* rather than a const T*.
template <typename T>
struct OptInOut : In<T> {
  bool written;
};

template <typename T = Dispatched>
OptInOut<T> opt_inout(const OptArray& a, const char* name, bool written) {
  return {{a ? &*a : nullptr, name}, written};
}

// An output of `shape`; not `wanted`: None, and the kernel gets a null pointer.
template <typename T>
struct Out {
  Shape shape;
  bool wanted;
};

template <typename T = Dispatched>
Out<T> out(Shape shape, bool wanted = true) {
  return {std::move(shape), wanted};
}

// The element type behind a kernel lambda's pointer: Scalar<decltype(y)>.
template <typename Pointer>
using Scalar = std::remove_const_t<std::remove_pointer_t<Pointer>>;

namespace detail {

template <typename T, typename D>
using Resolved = std::conditional_t<std::is_same_v<T, Dispatched>, D, T>;

// An output between allocation and return: the array (or None) and its data.
template <typename T>
struct Allocated {
  py::object array;
  T* data;
};

// A read-only operand as the kernel reads it: its data, and the C-contiguous copy
// that holds it when the operand itself is not C-contiguous (kept through the call).
template <typename T>
struct Input {
  py::object copy;
  const T* data;
};

template <typename D, typename T>
Input<Resolved<T, D>> prepare(const In<T>& a, const char* op) {
  using R = Resolved<T, D>;
  if (a.array == nullptr) return {py::object(), nullptr};
  if (match_dtype<R>(*a.array) != DtypeMatch::Yes) fail_dtype<R>(*a.array, op, a.name);
  if (a.array->flags() & py::array::c_style)
    return {py::object(), static_cast<const R*>(a.array->data())};
  py::array copy = py::array::ensure(*a.array, py::array::c_style);  // same dtype, C order
  if (!copy) throw py::error_already_set();
  const R* p = static_cast<const R*>(copy.data());
  return {std::move(copy), p};
}

template <typename D, typename T>
Resolved<T, D>* prepare(const OptInOut<T>& a, const char* op) {
  using R = Resolved<T, D>;
  if (a.array == nullptr) return nullptr;
  if (a.written) return mutable_data<R>(*a.array, op, a.name);
  return const_cast<R*>(data<R>(*a.array, op, a.name));
}

// Takes the shape: each call runs the kernel for one dtype only.
template <typename D, typename T>
Allocated<Resolved<T, D>> prepare(Out<T>& o, const char*) {
  if (!o.wanted) return {py::none(), nullptr};
  py::array_t<Resolved<T, D>> a(std::move(o.shape));
  auto* p = a.mutable_data();
  return {std::move(a), p};
}

template <typename P>
P* pointer(P* p) {
  return p;
}
template <typename T>
const T* pointer(const Input<T>& a) {
  return a.data;
}
template <typename T>
T* pointer(const Allocated<T>& a) {
  return a.data;
}

// The outputs among the prepared operands, as a tuple of their arrays.
template <typename P>
std::tuple<> outputs_of(P*) {
  return {};
}
template <typename T>
std::tuple<> outputs_of(Input<T>&) {
  return {};
}
template <typename T>
std::tuple<py::object> outputs_of(Allocated<T>& a) {
  return {std::move(a.array)};
}

template <typename D, typename Kernel, typename... Operands>
py::object run(const char* op, Kernel& kernel, Operands&... operands) {
  // Every check and allocation happens here, before the GIL is released. The
  // outputs outlive the release, so when a kernel throws, the GIL is back
  // before an output array is freed.
  auto prepared = std::make_tuple(prepare<D>(operands, op)...);
  auto call_kernel = [&] {
    return std::apply([&](auto&... p) { return kernel(pointer(p)...); }, prepared);
  };
  auto outputs = std::apply([](auto&... p) { return std::tuple_cat(outputs_of(p)...); }, prepared);
  using Result = decltype(call_kernel());
  if constexpr (std::is_void_v<Result>) {
    {
      py::gil_scoped_release nogil;
      call_kernel();
    }
    if constexpr (std::tuple_size_v<decltype(outputs)> == 1)
      return std::get<0>(std::move(outputs));
    else
      return std::apply([](auto&... o) { return py::make_tuple(std::move(o)...); }, outputs);
  } else {
    Result value;
    {
      py::gil_scoped_release nogil;
      value = call_kernel();
    }
    return std::apply([&](auto&... o) { return py::make_tuple(std::move(o)..., value); }, outputs);
  }
}

template <typename First, typename... Rest>
const First& first(const First& f, const Rest&...) {
  return f;
}

template <typename... Dtypes, typename Args, size_t... I>
py::object call_unpacked(const char* op, Args args, std::index_sequence<I...>) {
  auto& kernel = std::get<sizeof...(I)>(args);
  if constexpr (sizeof...(Dtypes) == 0) {
    return run<void>(op, kernel, std::get<I>(args)...);
  } else {
    const auto& key = first(std::get<I>(args)...);
    static_assert(std::is_same_v<std::decay_t<decltype(key)>, In<Dispatched>>,
                  "the first operand decides the dtype: in(array, name)");
    return dispatch<Dtypes...>(*key.array, op, key.name, [&](auto tag) {
      return run<decltype(tag)>(op, kernel, std::get<I>(args)...);
    });
  }
}

}  // namespace detail

// Operands and outputs, then the kernel: see the top of this file.
template <typename... Dtypes, typename... Args>
py::object call(const char* op, Args&&... args) {
  static_assert(sizeof...(Args) >= 2, "marshal::call(op, operands and outputs..., kernel)");
  return detail::call_unpacked<Dtypes...>(op, std::forward_as_tuple(std::forward<Args>(args)...),
                                          std::make_index_sequence<sizeof...(Args) - 1>{});
}

}  // namespace kiln::bind::marshal
