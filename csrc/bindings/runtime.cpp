#include "bindings/arrays.h"
#include "bindings/families.h"
#include "common/blas.h"
#include "common/parallel.h"

namespace kiln::bind {

void bind_runtime(py::module_& m) {
  kiln::init_blas();
  m.def("set_num_threads", &kiln::set_num_threads, py::arg("n"),
        "Threads for kiln's kernels (OpenBLAS calls run on them). Results do not "
        "depend on the count: reductions use chunks fixed by the problem size.");
  m.def("get_num_threads", &kiln::get_num_threads);
}

}  // namespace kiln::bind
