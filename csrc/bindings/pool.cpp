// Pooling kernels on NumPy arrays: max_pool2d, avg_pool2d, adaptive_avg_pool2d,
// adaptive_max_pool2d (forward and backward), exposed as kiln.kernels.*.
#include <pybind11/stl.h>

#include <array>
#include <climits>

#include "bindings/arrays.h"
#include "bindings/families.h"
#include "cpu/pool.h"

namespace kiln::bind {
namespace {

// One window size: a Python int (or NumPy integer), not a bool.
int64_t window_int(py::handle v, const char* op, const char* name) {
  if (!PyIndex_Check(v.ptr()) || PyBool_Check(v.ptr()))
    fail<TypeError>(op, ": ", name, " must be an int or a pair of ints, got ",
                    py::repr(v).cast<std::string>());
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow || value > INT32_MAX || value < INT32_MIN)
    fail(op, ": ", name, " ", py::repr(v).cast<std::string>(), " is out of range");
  return value;
}

// PyTorch's int-or-pair argument: an int, or a sequence of one or two ints.
// `none_as` (when given) replaces None entries of a pair (adaptive output_size).
std::array<int64_t, 2> int_pair(py::handle v, const char* op, const char* name,
                                const std::array<int64_t, 2>* none_as = nullptr) {
  if (PyIndex_Check(v.ptr())) {
    const int64_t k = window_int(v, op, name);
    return {k, k};
  }
  if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
    const auto seq = py::reinterpret_borrow<py::sequence>(v);
    const size_t n = seq.size();
    if (n == 2 || (n == 1 && !none_as)) {
      std::array<int64_t, 2> out{};
      for (size_t i = 0; i < 2; ++i) {
        const py::object item = seq[n == 2 ? i : 0];
        out[i] = none_as && item.is_none() ? (*none_as)[i] : window_int(item, op, name);
      }
      return out;
    }
  }
  fail<TypeError>(op, ": ", name, " must be an int or a pair of ints, got ",
                  py::repr(v).cast<std::string>());
}

Pool2dWindow make_window(const char* op, py::handle kernel_size, py::handle stride,
                         py::handle padding, py::handle dilation, bool ceil_mode) {
  Pool2dWindow w;
  const auto k = int_pair(kernel_size, op, "kernel_size");
  // stride=None (or an empty sequence, as PyTorch allows) means stride = kernel_size.
  const bool default_stride = stride.is_none() || (py::isinstance<py::sequence>(stride) &&
                                                   py::len(stride) == 0);
  const auto s = default_stride ? k : int_pair(stride, op, "stride");
  const auto p = int_pair(padding, op, "padding");
  const auto d = int_pair(dilation, op, "dilation");
  for (int i = 0; i < 2; ++i) {
    w.kernel[i] = k[i];
    w.stride[i] = s[i];
    w.padding[i] = p[i];
    w.dilation[i] = d[i];
  }
  w.ceil_mode = ceil_mode;
  return w;
}

py::object max_pool2d_forward_py(const py::array& input, py::handle kernel_size,
                                 py::handle stride, py::handle padding, py::handle dilation,
                                 bool ceil_mode, bool return_indices) {
  const char* op = "max_pool2d";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::object {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Pool2dWindow w = make_window(op, kernel_size, stride, padding, dilation, ceil_mode);
    const Shape in_shape = shape_of(input);
    const Pool2dSizes s = pool2d_sizes(op, in_shape, w);
    const Shape out_shape = pool2d_output_shape(in_shape, s.out_h, s.out_w);
    auto y = empty<T>(out_shape);
    T* yp = y.mutable_data();
    if (!return_indices) {
      py::gil_scoped_release nogil;
      max_pool2d_forward(x, yp, static_cast<int64_t*>(nullptr), s, w);
      return std::move(y);
    }
    auto indices = empty<int64_t>(out_shape);
    int64_t* ip = indices.mutable_data();
    {
      py::gil_scoped_release nogil;
      max_pool2d_forward(x, yp, ip, s, w);
    }
    return py::make_tuple(y, indices);
  });
}

py::array max_pool2d_backward_py(const py::array& grad_output, const py::array& indices,
                                 const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  return dispatch_float(grad_output, op, "grad_output", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* dy = data<T>(grad_output, op, "grad_output");
    const int64_t* ip = data<int64_t>(indices, op, "indices");
    const Shape g_shape = shape_of(grad_output);
    if (shape_of(indices) != g_shape)
      fail(op, ": indices ", shape_str(shape_of(indices)), " must have the shape of grad_output ",
           shape_str(g_shape));
    const Pool2dSizes s = pool2d_grad_sizes(op, g_shape, input_shape);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    {
      py::gil_scoped_release nogil;
      max_pool2d_backward(op, dy, ip, dxp, s);
    }
    return dx;
  });
}

py::array avg_pool2d_forward_py(const py::array& input, py::handle kernel_size,
                                py::handle stride, py::handle padding, bool ceil_mode,
                                bool count_include_pad, std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Pool2dWindow w = make_window(op, kernel_size, stride, padding, py::int_(1), ceil_mode);
    check_divisor_override(op, divisor_override);
    const Shape in_shape = shape_of(input);
    const Pool2dSizes s = pool2d_sizes(op, in_shape, w);
    auto y = empty<T>(pool2d_output_shape(in_shape, s.out_h, s.out_w));
    T* yp = y.mutable_data();
    {
      py::gil_scoped_release nogil;
      avg_pool2d_forward(x, yp, s, w, count_include_pad, divisor_override);
    }
    return y;
  });
}

py::array avg_pool2d_backward_py(const py::array& grad_output, const Shape& input_shape,
                                 py::handle kernel_size, py::handle stride, py::handle padding,
                                 bool ceil_mode, bool count_include_pad,
                                 std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  return dispatch_float(grad_output, op, "grad_output", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* dy = data<T>(grad_output, op, "grad_output");
    const Pool2dWindow w = make_window(op, kernel_size, stride, padding, py::int_(1), ceil_mode);
    check_divisor_override(op, divisor_override);
    const Pool2dSizes s = pool2d_sizes(op, input_shape, w);
    check_pool2d_grad(op, shape_of(grad_output), input_shape, s);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    {
      py::gil_scoped_release nogil;
      avg_pool2d_backward(dy, dxp, s, w, count_include_pad, divisor_override);
    }
    return dx;
  });
}

// Adaptive output_size: int, or pair whose None entries keep the input's size.
Pool2dSizes adaptive_sizes(const char* op, const Shape& in_shape, py::handle output_size) {
  std::array<int64_t, 2> keep{in_shape.size() >= 2 ? in_shape[in_shape.size() - 2] : 0,
                              in_shape.size() >= 2 ? in_shape[in_shape.size() - 1] : 0};
  const auto o = int_pair(output_size, op, "output_size", &keep);
  return adaptive_pool2d_sizes(op, in_shape, o[0], o[1]);
}

py::array adaptive_avg_pool2d_forward_py(const py::array& input, py::handle output_size) {
  const char* op = "adaptive_avg_pool2d";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Shape in_shape = shape_of(input);
    const Pool2dSizes s = adaptive_sizes(op, in_shape, output_size);
    auto y = empty<T>(pool2d_output_shape(in_shape, s.out_h, s.out_w));
    T* yp = y.mutable_data();
    {
      py::gil_scoped_release nogil;
      adaptive_avg_pool2d_forward(x, yp, s);
    }
    return y;
  });
}

py::array adaptive_avg_pool2d_backward_py(const py::array& grad_output,
                                          const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  return dispatch_float(grad_output, op, "grad_output", [&](auto tag) -> py::array {
    using T = decltype(tag);
    const T* dy = data<T>(grad_output, op, "grad_output");
    const Pool2dSizes s = pool2d_grad_sizes(op, shape_of(grad_output), input_shape);
    auto dx = empty<T>(input_shape);
    T* dxp = dx.mutable_data();
    {
      py::gil_scoped_release nogil;
      adaptive_avg_pool2d_backward(dy, dxp, s);
    }
    return dx;
  });
}

py::tuple adaptive_max_pool2d_forward_py(const py::array& input, py::handle output_size) {
  const char* op = "adaptive_max_pool2d";
  return dispatch_float(input, op, "input", [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const T* x = data<T>(input, op, "input");
    const Shape in_shape = shape_of(input);
    const Pool2dSizes s = adaptive_sizes(op, in_shape, output_size);
    const Shape out_shape = pool2d_output_shape(in_shape, s.out_h, s.out_w);
    auto y = empty<T>(out_shape);
    auto indices = empty<int64_t>(out_shape);
    T* yp = y.mutable_data();
    int64_t* ip = indices.mutable_data();
    {
      py::gil_scoped_release nogil;
      adaptive_max_pool2d_forward(x, yp, ip, s);
    }
    return py::make_tuple(y, indices);
  });
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("ceil_mode") = false, py::arg("return_indices") = true,
        R"doc(2-D max pooling: returns (output, indices), or output alone when return_indices=False.

input (N, C, H, W) or (C, H, W), float32 or float64, C-contiguous. kernel_size,
stride (None: kernel_size), padding, dilation: int or (h, w); padding at most
half the kernel. output (N, C, OH, OW) with OH = floor((H + 2*pad - dilation*(k-1)
- 1 [+ stride-1 if ceil_mode]) / stride) + 1; indices int64 of the same shape,
the flat position h*W + w of each maximum in its input plane (-1 for a window
lying wholly in padding). Without indices (no backward to feed) the kernel
is cheaper.)doc");
  m.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("grad_output"),
        py::arg("indices"), py::arg("input_shape"),
        R"doc(Gradient of max_pool2d (and adaptive_max_pool2d) with respect to its input.

grad_output (N, C, OH, OW) and indices (int64, same shape) from the forward;
input_shape (N, C, H, W) or (C, H, W). Returns grad_input of input_shape:
zeros, plus grad_output scattered to the argmax positions.)doc");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("input"), py::arg("kernel_size"),
        py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        R"doc(2-D average pooling.

input (N, C, H, W) or (C, H, W), float32 or float64. kernel_size, stride (None:
kernel_size), padding: int or (h, w). Returns output (N, C, OH, OW) (sizes as
max_pool2d with dilation 1). Each window sum is divided by divisor_override if
given (non-zero), else by the window size clipped to the padded input
(count_include_pad=True) or to the input (False).)doc");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("grad_output"),
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride") = py::none(),
        py::arg("padding") = 0, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = true, py::arg("divisor_override") = py::none(),
        R"doc(Gradient of avg_pool2d with respect to its input.

grad_output (N, C, OH, OW); input_shape and the pooling arguments as given to
avg_pool2d_forward. Returns grad_input of input_shape.)doc");
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"),
        R"doc(Adaptive 2-D average pooling to output_size (int or (oh, ow); None keeps that size).

input (N, C, H, W) or (C, H, W). Output row i averages input rows
[floor(i*H/OH), ceil((i+1)*H/OH)), columns alike. Returns (N, C, OH, OW).)doc");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_py,
        py::arg("grad_output"), py::arg("input_shape"),
        R"doc(Gradient of adaptive_avg_pool2d: grad_output (N, C, OH, OW) -> grad_input of input_shape.)doc");
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward_py, py::arg("input"),
        py::arg("output_size"),
        R"doc(Adaptive 2-D max pooling: returns (output, indices).

Windows as adaptive_avg_pool2d; indices int64 hold the flat h*W + w position of
each maximum. Its backward is max_pool2d_backward(grad_output, indices, input_shape).)doc");
}

}  // namespace kiln::bind
