#include "bindings/arrays.h"
#include "bindings/families.h"

namespace kiln::bind {

void bind_conv(py::module_& m) { (void)m; }

}  // namespace kiln::bind
