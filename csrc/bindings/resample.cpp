// Resampling kernels on NumPy arrays (interpolate's nearest, nearest-exact, bilinear and
// bicubic modes, antialiased or not, forward and backward), exposed as kiln.kernels.*.
#include <string>

#include "bindings/families.h"
#include "bindings/marshal.h"
#include "bindings/resample_args.h"
#include "cpu/resample.h"

namespace kiln::bind {
namespace {

using marshal::in;
using marshal::out;

py::object resample_forward_py(const py::array& input, int64_t out_h, int64_t out_w,
                               const std::string& mode, bool align_corners, double scale_h,
                               double scale_w, bool antialias) {
  const char* op = "interpolate";
  const Shape in_shape = shape_of(input);
  const ResampleSizes s = resample_sizes(in_shape, out_h, out_w, op);
  const ResampleOptions o = options(mode, align_corners, scale_h, scale_w, antialias, op);
  return marshal::call<float, double>(
      op, in(input, "input"), out(Shape{in_shape[0], in_shape[1], out_h, out_w}),
      [&](auto* x, auto* y) { resample_forward(x, y, s, o); });
}

py::object resample_backward_py(const py::array& grad_output, const Shape& input_shape,
                                const std::string& mode, bool align_corners, double scale_h,
                                double scale_w, bool antialias) {
  const char* op = "interpolate_backward";
  const ResampleSizes s = backward_sizes(shape_of(grad_output), input_shape, op);
  const ResampleOptions o = options(mode, align_corners, scale_h, scale_w, antialias, op);
  return marshal::call<float, double>(op, in(grad_output, "grad_output"), out(input_shape),
                                      [&](auto* dy, auto* dx) { resample_backward(dy, dx, s, o); });
}

}  // namespace

void bind_resample(py::module_& m) {
  m.def("interpolate_forward", &resample_forward_py, py::arg("input"), py::arg("out_h"),
        py::arg("out_w"), py::arg("mode") = "nearest", py::arg("align_corners") = false,
        py::arg("scale_h") = 0.0, py::arg("scale_w") = 0.0, py::arg("antialias") = false,
        R"doc(Resamples (N, C, H, W) to (N, C, out_h, out_w), as PyTorch's upsample kernels.

mode: 'nearest', 'nearest-exact', 'bilinear' or 'bicubic'; align_corners (bilinear,
bicubic): map the corner pixels' centers onto each other; scale_h, scale_w: the scale
factors interpolate was given (> 0), whose inverses then step the source, else 0 (the
sizes' ratio); antialias (bilinear, bicubic): PyTorch's antialiasing filter, which
widens with the downsampling factor.)doc");
  m.def("interpolate_backward", &resample_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("mode") = "nearest", py::arg("align_corners") = false,
        py::arg("scale_h") = 0.0, py::arg("scale_w") = 0.0, py::arg("antialias") = false,
        R"doc(Gradient of interpolate_forward: grad_output (N, C, OH, OW) -> grad_input of
input_shape, with the forward's mode, align_corners, scales and antialias.)doc");
}

}  // namespace kiln::bind
