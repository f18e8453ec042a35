#include "bindings/arrays.h"
#include "bindings/families.h"
#include "common/blas.h"
#include "common/parallel.h"
#include "cpu/winograd.h"

namespace kiln::bind {

void bind_runtime(py::module_& m) {
  kiln::init_blas();
  m.def("set_num_threads", &kiln::set_num_threads, py::arg("n"),
        "Threads for kiln's kernels (OpenBLAS calls run on them). Results do not "
        "depend on the count: reductions use chunks fixed by the problem size.");
  m.def("get_num_threads", &kiln::get_num_threads);
  // kiln.backends.cpu.conv.allow_winograd (private: a setting, not a kernel)
  m.def("_set_winograd_allowed", &kiln::cpu::set_winograd_allowed, py::arg("allowed"));
  m.def("_winograd_allowed", &kiln::cpu::winograd_allowed);
}

}  // namespace kiln::bind
