// kiln._C_cuda interpolate: the twins of bindings/resample.cpp on CUDA arrays (same
// names, arguments, checks and results; cuda/resample.h).
#include <string>

#include "bindings/cuda/device_array.h"
#include "bindings/cuda/operands.h"
#include "bindings/resample_args.h"
#include "cuda/resample.h"

namespace kiln::cuda::bind {
namespace {

// The modes the CUDA kernels have: bicubic and antialiased filters are CPU-only so far.
ResampleOptions cuda_options(const std::string& mode, bool align_corners, double scale_h,
                             double scale_w, bool antialias, const char* op) {
  const ResampleOptions o =
      kiln::bind::options(mode, align_corners, scale_h, scale_w, antialias, op);
  if (o.mode == Resample::Bicubic || o.antialias)
    fail<ValueError>(op, ": the CUDA backend has no ", antialias ? "antialiased " : "", mode,
                     " resampling yet (the CPU has); move the tensor to the CPU for it");
  return o;
}

py::object interpolate_forward_py(py::handle input, int64_t out_h, int64_t out_w,
                                  const std::string& mode, bool align_corners, double scale_h,
                                  double scale_w, bool antialias) {
  const char* op = "interpolate";
  const DeviceView x = view_of(input, op, "input");
  const ResampleSizes s = kiln::bind::resample_sizes(x.shape, out_h, out_w, op);
  const ResampleOptions o = cuda_options(mode, align_corners, scale_h, scale_w, antialias, op);
  ArrayPtr y = output(Shape{x.shape[0], x.shape[1], out_h, out_w}, x);
  launch(x, op, "input", [&](auto zero) {
    using T = decltype(zero);
    cuda::resample_forward(x.ptr<T>(), y->ptr<T>(), s, o);
  });
  return py::cast(y);
}

py::object interpolate_backward_py(py::handle grad_output, const Shape& input_shape,
                                   const std::string& mode, bool align_corners, double scale_h,
                                   double scale_w, bool antialias) {
  const char* op = "interpolate_backward";
  const DeviceView dy = view_of(grad_output, op, "grad_output");
  const ResampleSizes s = kiln::bind::backward_sizes(dy.shape, input_shape, op);
  const ResampleOptions o = cuda_options(mode, align_corners, scale_h, scale_w, antialias, op);
  ArrayPtr dx = output(input_shape, dy);
  launch(dy, op, "grad_output", [&](auto zero) {
    using T = decltype(zero);
    cuda::resample_backward(dy.ptr<T>(), dx->ptr<T>(), s, o);
  });
  return py::cast(dx);
}

}  // namespace

void bind_resample(py::module_& m) {
  m.def("interpolate_forward", &interpolate_forward_py, py::arg("input"), py::arg("out_h"),
        py::arg("out_w"), py::arg("mode") = "nearest", py::arg("align_corners") = false,
        py::arg("scale_h") = 0.0, py::arg("scale_w") = 0.0, py::arg("antialias") = false,
        "Resamples (N, C, H, W) to (N, C, out_h, out_w) on the GPU: mode 'nearest', "
        "'nearest-exact' or 'bilinear', as interpolate_forward of kiln._C.");
  m.def("interpolate_backward", &interpolate_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("mode") = "nearest", py::arg("align_corners") = false,
        py::arg("scale_h") = 0.0, py::arg("scale_w") = 0.0, py::arg("antialias") = false,
        "Gradient of interpolate_forward on the GPU: grad_output (N, C, OH, OW) -> grad_input "
        "of input_shape.");
}

}  // namespace kiln::cuda::bind
