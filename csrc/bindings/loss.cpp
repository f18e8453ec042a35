#include "bindings/arrays.h"
#include "bindings/families.h"

namespace kiln::bind {

void bind_loss(py::module_& m) { (void)m; }

}  // namespace kiln::bind
