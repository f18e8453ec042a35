// Argument checks that throw. Every kernel entry point validates shapes and
// ranges before touching memory; the bindings translate these exceptions into
// Python's ValueError / TypeError, so bad input never crashes the interpreter.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;

// Wrong values or shapes -> Python ValueError.
struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// Wrong dtype or kind of argument -> Python TypeError.
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// A device out of memory after its cache was freed -> Python MemoryError.
struct MemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Concatenates the pieces into one message: fail<ValueError>("conv2d: ", ...).
template <typename E = ValueError, typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw E(os.str());
}

}  // namespace kiln

// KILN_CHECK(cond, "op: message ", value, ...) throws kiln::ValueError.
#define KILN_CHECK(cond, ...)              \
  do {                                     \
    if (!(cond)) ::kiln::fail(__VA_ARGS__); \
  } while (0)
