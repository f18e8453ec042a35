// The pybind11 module kiln._C_cuda: the CUDA backend's runtime (devices, streams,
// the caching allocator) and kernels. Built only when CMake finds a CUDA compiler,
// and imported only by kiln.cuda, so a CPU machine never loads CUDA's libraries.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "bindings/cuda/device_array.h"
#include "common/check.h"
#include "cuda/runtime.h"

namespace py = pybind11;
namespace kc = kiln::cuda;

// One registration function per kernel family, each in csrc/bindings/cuda/<family>.cpp.
namespace kiln::cuda::bind {
void bind_activation(py::module_& m);
void bind_loss(py::module_& m);
void bind_dropout(py::module_& m);
void bind_optim(py::module_& m);
void bind_linear(py::module_& m);
void bind_conv(py::module_& m);
void bind_norm(py::module_& m);
void bind_pool(py::module_& m);
void bind_resample(py::module_& m);
void bind_augment(py::module_& m);
}  // namespace kiln::cuda::bind

namespace {

py::dict stats_dict(const kiln::AllocatorStats& s) {
  py::dict d;
  d["allocated_bytes"] = s.allocated;
  d["peak_allocated_bytes"] = s.peak_allocated;
  d["reserved_bytes"] = s.reserved;
  d["device_allocations"] = s.raw_allocations;
  return d;
}

// The deferred checks of one captured graph (runtime.h), run after each replay.
struct CaptureChecks {
  int device;
  std::vector<kc::DeferredCheck> checks;
};

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "kiln's CUDA backend: devices, streams, the caching allocator and kernels";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const kc::CudaError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const kiln::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const kiln::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("device_count", &kc::device_count, "CUDA devices the driver reports (0 without one)");
  m.def("unavailable_reason", &kc::unavailable_reason,
        "why device_count() is 0, or '' when devices exist");
  m.def("properties", [](int device) {
    const kc::DeviceProperties p = kc::properties(device);
    py::dict d;
    d["name"] = p.name;
    d["total_memory"] = p.total_memory;
    d["multi_processor_count"] = p.multiprocessors;
    d["major"] = p.major;
    d["minor"] = p.minor;
    d["l2_cache_size"] = p.l2_cache_bytes;
    return d;
  }, py::arg("device"));
  m.def("stream", [](int device) { return reinterpret_cast<std::uintptr_t>(kc::stream(device)); },
        py::arg("device"), "the handle of the device's one stream");
  m.def("synchronize", &kc::synchronize, py::arg("device"),
        py::call_guard<py::gil_scoped_release>());
  m.def("malloc", [](size_t nbytes, int device) {
    return reinterpret_cast<std::uintptr_t>(kc::device_malloc(nbytes, device));
  }, py::arg("nbytes"), py::arg("device"));
  m.def("free", [](std::uintptr_t ptr, int device) {
    kc::device_free(reinterpret_cast<void*>(ptr), device);
  }, py::arg("ptr"), py::arg("device"));
  m.def("memory_stats", [](int device) { return stats_dict(kc::memory_stats(device)); },
        py::arg("device"));
  m.def("reset_peak_memory_stats", &kc::reset_peak_memory_stats, py::arg("device"));
  m.def("empty_cache", &kc::empty_cache, py::arg("device"),
        py::call_guard<py::gil_scoped_release>());

  m.def("capture_pool_begin", &kc::begin_capture_pool, py::arg("device"), py::arg("pool"),
        "Until capture_pool_end, the device's allocations (kernels' scratch included) come "
        "from the private pool `pool` (> 0), kept from other work until released");
  m.def("capture_pool_end", &kc::end_capture_pool, py::arg("device"));
  m.def("capture_pool_release", &kc::release_capture_pool, py::arg("device"), py::arg("pool"),
        "The pool's graphs are gone: its blocks join the general cache");
  py::class_<CaptureChecks>(m, "CaptureChecks",
                            "Checks a captured graph's kernels make on the device (class "
                            "targets in range, ...); verify() after each replay")
      .def("verify", [](const CaptureChecks& c) { kc::run_deferred_checks(c.device, c.checks); },
           py::call_guard<py::gil_scoped_release>(),
           "Waits for the stream and raises the eager kernels' error if a check failed")
      .def("__len__", [](const CaptureChecks& c) { return c.checks.size(); });
  m.def("capture_checks", [](int device) {
    return CaptureChecks{device, kc::take_deferred_checks(device)};
  }, py::arg("device"), "The checks registered by the kernels captured since capture_pool_begin");

  kiln::cuda::bind::bind_device_array(m);
  kiln::cuda::bind::bind_activation(m);
  kiln::cuda::bind::bind_loss(m);
  kiln::cuda::bind::bind_dropout(m);
  kiln::cuda::bind::bind_optim(m);
  kiln::cuda::bind::bind_linear(m);
  kiln::cuda::bind::bind_conv(m);
  kiln::cuda::bind::bind_norm(m);
  kiln::cuda::bind::bind_pool(m);
  kiln::cuda::bind::bind_resample(m);
  kiln::cuda::bind::bind_augment(m);
}
