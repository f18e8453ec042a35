// Helpers shared by the binding files: NumPy arrays in (no copies), checked for
// dtype, contiguity and rank before any pointer is handed to a kernel.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional arguments (OptArray)

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "common/check.h"

namespace kiln::bind {

namespace py = pybind11;

inline Shape shape_of(const py::array& a) {
  return Shape(a.shape(), a.shape() + a.ndim());
}

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
const char* dtype_label() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, int8_t>) return "int8";
  else return "?";
}

// How an array's dtype compares with the C++ type T, by value: kind and item
// size, then byte order. NumPy hands out many dtype objects equal to float32
// besides its canonical one (unpickled arrays, a.astype(np.dtype('f4')
// .newbyteorder('=')), other libraries' arrays), so comparing objects would
// refuse valid input; an equal kind and size in the other byte order would be
// read as garbage, so it is a match only in kind.
enum class DtypeMatch { No, Yes, ForeignOrder };

// NumPy's byte order codes: '=' native, '|' not applicable (one byte), '<'
// little-endian, '>' big-endian.
inline bool native_order(char byteorder) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  constexpr char native = '>';
#else
  constexpr char native = '<';
#endif
  return byteorder == '=' || byteorder == '|' || byteorder == native;
}

// NumPy's builtin descriptor of T, the one nearly every array of that dtype
// points to: comparing pointers settles the common case without a dtype object.
template <typename T>
const PyObject* canonical_descr() {
  static PyObject* const d = py::dtype::of<T>().release().ptr();  // an immortal builtin
  return d;
}

template <typename T>
DtypeMatch match_dtype(const py::array& a) {
  if (py::detail::array_proxy(a.ptr())->descr == canonical_descr<T>()) return DtypeMatch::Yes;
  const py::dtype d = a.dtype();
  const char kind = std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
  if (d.kind() != kind || d.itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    return DtypeMatch::No;
  return native_order(d.byteorder()) ? DtypeMatch::Yes : DtypeMatch::ForeignOrder;
}

// The TypeError for an array of none of the dtypes Ts: names the op, the
// argument, what was expected, what came, and the way out for a byte-swapped one.
template <typename... Ts>
[[noreturn]] void fail_dtype(const py::array& a, const char* op, const char* name) {
  std::string want;
  ((want += (want.empty() ? "" : " or ") + std::string(dtype_label<Ts>())), ...);
  if (((match_dtype<Ts>(a) == DtypeMatch::ForeignOrder) || ...))
    fail<TypeError>(op, ": expected ", name, " of dtype ", want, " in native byte order, got ",
                    a.dtype().byteorder() == '>' ? "big" : "little", "-endian ", dtype_name(a),
                    " with shape ", shape_str(shape_of(a)),
                    " (convert with a.astype(a.dtype.newbyteorder('=')))");
  fail<TypeError>(op, ": expected ", name, " of dtype ", want, ", got ", dtype_name(a),
                  " with shape ", shape_str(shape_of(a)));
}

// Checks dtype T and C-contiguity; returns the data pointer.
template <typename T>
const T* data(const py::array& a, const char* op, const char* name) {
  if (match_dtype<T>(a) != DtypeMatch::Yes) fail_dtype<T>(a, op, name);
  if (!(a.flags() & py::array::c_style))
    fail<ValueError>(op, ": ", name, " with shape ", shape_str(shape_of(a)),
                     " must be C-contiguous");
  return static_cast<const T*>(a.data());
}

template <typename T>
T* mutable_data(const py::array& a, const char* op, const char* name) {
  const T* p = data<T>(a, op, name);
  if (!a.writeable()) fail<ValueError>(op, ": ", name, " is read-only");
  return const_cast<T*>(p);
}

inline void check_ndim(const py::array& a, std::initializer_list<int> allowed, const char* op,
                       const char* name) {
  for (int n : allowed)
    if (a.ndim() == n) return;
  std::string want;
  for (int n : allowed) want += (want.empty() ? "" : " or ") + std::to_string(n) + "-D";
  fail<ValueError>(op, ": expected ", name, " to be ", want, ", got shape ",
                   shape_str(shape_of(a)));
}

inline void check_same_shape(const py::array& a, const py::array& b, const char* op,
                             const char* a_name, const char* b_name) {
  if (shape_of(a) != shape_of(b))
    fail<ValueError>(op, ": ", a_name, " shape ", shape_str(shape_of(a)), " does not match ",
                     b_name, " shape ", shape_str(shape_of(b)));
}

// Calls f(T{}) for the first of the types Ts that is the dtype of `a` (compared
// by value, see match_dtype); TypeError naming the op, the argument and every
// accepted dtype otherwise.
template <typename... Ts>
struct DtypeList {};

template <typename T, typename... Rest, typename... All, typename F>
decltype(auto) dispatch_among(DtypeList<All...> all, const py::array& a, const char* op,
                              const char* name, F&& f) {
  if (match_dtype<T>(a) == DtypeMatch::Yes) return f(T{});
  if constexpr (sizeof...(Rest) == 0) fail_dtype<All...>(a, op, name);
  else return dispatch_among<Rest...>(all, a, op, name, std::forward<F>(f));
}

template <typename... Ts, typename F>
decltype(auto) dispatch(const py::array& a, const char* op, const char* name, F&& f) {
  return dispatch_among<Ts...>(DtypeList<Ts...>{}, a, op, name, std::forward<F>(f));
}

// An optional array argument (None in Python).
using OptArray = std::optional<py::array>;

}  // namespace kiln::bind
