// The pybind11 module kiln._C: exception translation and the op families'
// registrations. No logic lives here.
#include <pybind11/pybind11.h>

#include "bindings/families.h"
#include "common/check.h"
#include "common/heap.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "kiln's C++ kernels (forward and backward), on NumPy arrays";
  // Freed activation buffers stay in the heap for the next step (common/heap.h).
  m.attr("_malloc_tuned") = kiln::keep_freed_memory();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const kiln::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  kiln::bind::bind_runtime(m);
  kiln::bind::bind_conv(m);
  kiln::bind::bind_pool(m);
  kiln::bind::bind_norm(m);
  kiln::bind::bind_linear(m);
  kiln::bind::bind_activation(m);
  kiln::bind::bind_loss(m);
  kiln::bind::bind_dropout(m);
  kiln::bind::bind_augment(m);
  kiln::bind::bind_optim(m);
  kiln::bind::bind_resample(m);
  kiln::bind::bind_tape(m);
}
