"""One declarative table of kiln's public differentiable ops, each row checked against
PyTorch by tests/test_op_table.py (forward values, dtypes and shapes; gradients of a
random upstream gradient; float64 finite-difference gradcheck; bad input).

Adding an op means adding one ``OpRow`` to ``OPS``, nothing else::

    OpRow("F.elu", samples=lambda m: [
        Sample("alpha=0.5", m(3, 4), alpha=0.5),
        Sample("noncontig", m(4, 3, layout="T")),
    ], errors=lambda m: [
        ErrorCase("int input", m.ints(3), exc=TypeError, match=r"elu: .*int64"),
    ])

``op`` names the callable in both libraries: ``"F.name"`` is kiln.nn.functional.name and
torch.nn.functional.name, ``"kiln.name"`` is kiln.name and torch.name, ``".name"`` is
the Tensor method on the first argument, and a plain callable (``operator.add``) is used
as it is for both. ``torch_op`` overrides the PyTorch side where the spellings differ.

A sample's arguments are built anew for each library and each test: a float ndarray
(or ``Layout``, a non-contiguous one) becomes a leaf tensor that requires grad, ``Const``
a tensor that does not, an integer or bool ndarray a plain tensor, and lists/tuples
are converted element by element; everything else (numbers, strings, slices, None)
passes as it is. ``m`` (a ``Maker``) draws arrays of the dtype under test.
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# (rtol, atol) per dtype, unless a row says otherwise
DEFAULT_TOL = {F32: (1e-4, 1e-5), F64: (1e-10, 1e-12)}
LOOSE_TOL = {F32: (1e-4, 1e-4), F64: (1e-9, 1e-10)}
# float64 gradcheck only on inputs this small (elements over all differentiable inputs)
GRADCHECK_MAX_NUMEL = 120


# ----------------------------------------------------------------------- arguments
@dataclass(frozen=True)
class Const:
    """A tensor argument that does not require grad (labels, running statistics, ...).
    Compared after the call too, so in-place updates (running stats) are checked."""

    array: np.ndarray


@dataclass(frozen=True)
class Layout:
    """A float array laid out non-contiguously: 'T' swaps the last two axes of a
    contiguous buffer (a transposed view), 'step' takes every other element of a
    buffer twice as long in the last axis (a sliced view)."""

    array: np.ndarray
    how: str

    def materialize(self) -> np.ndarray:
        a = self.array
        if self.how == "T":
            return np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)
        buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        buf[..., ::2] = a
        return buf[..., ::2]


class Maker:
    """Draws the arrays of a row's samples in the dtype under test, from a fixed seed."""

    def __init__(self, dtype: np.dtype, seed: int) -> None:
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(seed)

    def __call__(self, *shape: int, kind: str = "randn", layout: str | None = None,
                 dtype: Any = None) -> Any:
        """kind: 'randn' (standard normal), 'pos' (0.5 to 2), 'unit' (0.05 to 0.95),
        'distinct' (values at least 0.01 apart: no ties for max/min and pools);
        layout: None (contiguous), 'T' or 'step' (non-contiguous, see Layout)."""
        n = int(np.prod(shape))
        if kind == "randn":
            a = self.rng.standard_normal(shape)
        elif kind == "pos":
            a = self.rng.uniform(0.5, 2.0, shape)
        elif kind == "unit":
            a = self.rng.uniform(0.05, 0.95, shape)
        elif kind == "distinct":
            a = (self.rng.permutation(n) - n / 2).reshape(shape) * 0.01
        else:
            raise ValueError(kind)
        a = np.asarray(a, dtype or self.dtype)
        return Layout(a, layout) if layout else a

    def ints(self, *shape: int, high: int = 5, low: int = 0) -> np.ndarray:
        return self.rng.integers(low, high, shape).astype(np.int64)

    def labels(self, *shape: int, classes: int) -> Const:
        return Const(self.ints(*shape, high=classes))

    def bools(self, *shape: int) -> np.ndarray:
        return self.rng.random(shape) < 0.5

    def probs(self, *shape: int, dim: int = 1) -> Const:
        e = np.exp(self.rng.standard_normal(shape) * 2)
        return Const((e / e.sum(axis=dim, keepdims=True)).astype(self.dtype))

    def const(self, *shape: int, kind: str = "randn") -> Const:
        return Const(self(*shape, kind=kind))


# ----------------------------------------------------------------------- cases
@dataclass
class Sample:
    """One call: op(*args, **kwargs). ``xfail`` maps a test kind ('forward', 'backward',
    'gradcheck') to the reason (a kiln bug, with kiln's and PyTorch's answers).
    ``gradcheck=False`` where the point is not differentiable (ties, kinks)."""

    desc: str
    args: tuple
    kwargs: dict
    gradcheck: bool = True
    xfail: dict = field(default_factory=dict)

    def __init__(self, desc: str, *args: Any, gradcheck: bool = True,
                 xfail: dict | None = None, **kwargs: Any) -> None:
        self.desc, self.args, self.kwargs = desc, args, kwargs
        self.gradcheck, self.xfail = gradcheck, dict(xfail or {})

    def __repr__(self) -> str:
        return f"Sample({self.desc!r})"


@dataclass
class ErrorCase:
    """Bad input: kiln raises ``exc`` with a message matching ``match`` (the op's name
    and the offending shapes or values). PyTorch must reject the same call too (any
    exception) unless ``torch_raises`` is False."""

    desc: str
    args: tuple
    kwargs: dict
    exc: type
    match: str
    torch_raises: bool = True
    xfail: str | None = None

    def __init__(self, desc: str, *args: Any, exc: type, match: str,
                 torch_raises: bool = True, xfail: str | None = None, **kwargs: Any) -> None:
        self.desc, self.args, self.kwargs = desc, args, kwargs
        self.exc, self.match, self.torch_raises, self.xfail = exc, match, torch_raises, xfail

    def __repr__(self) -> str:
        return f"ErrorCase({self.desc!r})"


def bug(reason: str, *kinds: str) -> dict:
    """xfail(strict) for the given test kinds (all three when none are named)."""
    return {k: "kiln bug: " + reason for k in (kinds or ("forward", "backward", "gradcheck"))}


@dataclass
class OpRow:
    op: str | Callable[..., Any]
    samples: Callable[[Maker], Iterable[Sample]]
    errors: Callable[[Maker], Iterable[ErrorCase]] = lambda m: ()
    name: str = ""
    torch_op: str | Callable[..., Any] | None = None
    dtypes: tuple = (F32, F64)
    tol: dict = field(default_factory=lambda: DEFAULT_TOL)
    differentiable: bool = True  # False: no backward or gradcheck (comparisons, argmax)
    gradcheck: bool = True
    # sample desc -> {test kind: reason}: strict xfails of samples a shared generator makes
    xfail: dict = field(default_factory=dict)
    # sample descs whose gradients are not compared (PyTorch's own answer is not stable)
    no_backward: tuple = ()

    def __post_init__(self) -> None:
        if not self.name:
            if not isinstance(self.op, str):
                raise ValueError("a row with a callable op needs a name")
            self.name = self.op

    def __repr__(self) -> str:
        return f"OpRow({self.name!r})"


def resolve(spec: str | Callable[..., Any], lib: str) -> Callable[..., Any]:
    """The callable ``spec`` names in lib ('kiln' or 'torch')."""
    if callable(spec):
        return spec
    if spec.startswith("."):
        method = spec[1:]
        return lambda self, *a, **k: getattr(self, method)(*a, **k)
    if lib == "kiln":
        import kiln
        import kiln.nn.functional as kf
        module = kf if spec.startswith("F.") else kiln
    else:
        import torch
        import torch.nn.functional as tf
        module = tf if spec.startswith("F.") else torch
    return getattr(module, spec.split(".", 1)[1])


def _linalg(name: str, lib: str) -> Callable[..., Any]:
    """``kiln.linalg.<name>`` or ``torch.linalg.<name>``, looked up when called."""
    def call(*args: Any, **kwargs: Any) -> Any:
        module = importlib.import_module("kiln.linalg" if lib == "kiln" else "torch.linalg")
        return getattr(module, name)(*args, **kwargs)
    return call


def _channels_last(name: str) -> Callable[..., Any]:
    """``x.<name>(memory_format=channels_last)``, the format of x's library."""
    def call(x: Any) -> Any:
        lib = importlib.import_module(type(x).__module__.split(".")[0])
        return getattr(x, name)(memory_format=lib.channels_last)
    return call


def method(name: str) -> Callable[..., Any]:
    return lambda self, *a, **k: getattr(self, name)(*a, **k)


# ----------------------------------------------------------------------- generators
def unary_samples(m: Maker, kind: str = "randn", **kwargs: Any) -> list[Sample]:
    """Shapes every pointwise op is tried on: 0-d, empty, one element, odd, batch 1,
    and two non-contiguous layouts."""
    return [
        Sample("0d", m(kind=kind), **kwargs),
        Sample("empty", m(0, 3, kind=kind), **kwargs),
        Sample("1", m(1, kind=kind), **kwargs),
        Sample("2x3x5", m(2, 3, 5, kind=kind), **kwargs),
        Sample("batch1_1x3x4x4", m(1, 3, 4, 4, kind=kind), **kwargs),
        Sample("transposed_4x3", m(4, 3, kind=kind, layout="T"), **kwargs),
        Sample("sliced_3x5", m(3, 5, kind=kind, layout="step"), **kwargs),
        Sample("special_values", special_values(m), gradcheck=False, **kwargs),
        Sample("nan", np.array([np.nan, 0.5, -0.5, np.nan], m.dtype), gradcheck=False, **kwargs),
    ]


def special_values(m: Maker) -> np.ndarray:
    """Infinities, signed zeros, the kinks of relu/hardtanh/relu6 (0, +-1, 6), tiny
    and large values: PyTorch's value and gradient at each is the specification."""
    return np.array([np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 6.0, 1e-30, -1e-30,
                     30.0, -30.0, 100.0, -100.0], m.dtype)


def _torch_gelu_in_float64(input: Any, approximate: str = "none") -> Any:
    """PyTorch's gelu computed in float64 and rounded to the input's dtype. Its float32
    kernel is not one answer at +inf: the AVX-512 erf gives NaN where the scalar and
    AVX2 paths (and float64) give inf, the limit, which kiln gives everywhere."""
    import torch.nn.functional as tf
    return tf.gelu(input.double(), approximate=approximate).to(input.dtype)


def binary_samples(m: Maker, kind: str = "randn", scalars: bool = True) -> list[Sample]:
    out = [
        Sample("same_3x4", m(3, 4, kind=kind), m(3, 4, kind=kind)),
        Sample("bcast_3x1_1x4", m(3, 1, kind=kind), m(1, 4, kind=kind)),
        Sample("bcast_2x3x4_4", m(2, 3, 4, kind=kind), m(4, kind=kind)),
        Sample("bcast_4_2x3x4", m(4, kind=kind), m(2, 3, 4, kind=kind)),
        Sample("0d_and_2x3", m(kind=kind), m(2, 3, kind=kind)),
        Sample("0d_0d", m(kind=kind), m(kind=kind)),
        Sample("empty", m(0, 3, kind=kind), m(1, 3, kind=kind)),
        Sample("transposed", m(4, 3, kind=kind, layout="T"), m(4, 3, kind=kind)),
        Sample("sliced_bcast", m(3, 5, kind=kind, layout="step"), m(3, 1, kind=kind)),
    ]
    if scalars:
        out += [
            Sample("tensor_int_scalar", m(2, 3, kind=kind), 2),
            Sample("tensor_float_scalar", m(2, 3, kind=kind), 1.5),
            Sample("int_scalar_tensor", 3, m(2, 3, kind=kind)),
            Sample("float_scalar_tensor", 0.75, m(2, 3, kind=kind)),
            Sample("bool_scalar", m(2, 3, kind=kind), True),
        ]
    return out


def promotion_samples(m: Maker, nonzero: bool = False, bool_ok: bool = True) -> list[Sample]:
    """PyTorch's type promotion: int tensors with float scalars, 0-d float tensors with
    int tensors, bool with int, float32 with float64."""
    lo = 1 if nonzero else -4
    ints = lambda *s: m.ints(*s, low=lo, high=5)  # noqa: E731
    out = [
        Sample("int_tensor_int_tensor", ints(2, 3), ints(2, 3)),
        Sample("int_tensor_float_scalar", ints(2, 3), 2.5),
        Sample("int_tensor_int_scalar", ints(2, 3), 3),
        Sample("int_tensor_0d_float", ints(2, 3), Const(m(kind="pos"))),
        Sample("float_tensor_int_tensor", Const(m(2, 3, kind="pos")), ints(2, 3)),
        Sample("f32_f64", Const(m(2, 3, kind="pos", dtype=F32)),
               Const(m(2, 3, kind="pos", dtype=F64))),
    ]
    if bool_ok:
        out.append(Sample("bool_int", m.bools(2, 3), ints(2, 3)))
    return out


def _loss_regression(m: Maker) -> list[Sample]:
    out = []
    for red in ("mean", "sum", "none"):
        out.append(Sample(f"{red}_2x3x4", m(2, 3, 4), m(2, 3, 4), reduction=red))
    out += [
        Sample("0d", m(), m()),
        Sample("batch1", m(1, 5), m(1, 5)),
        Sample("target_no_grad", m(3, 4), m.const(3, 4)),
        Sample("noncontig", m(4, 3, layout="T"), m(4, 3, layout="step")),
        Sample("weight_mean", m(3, 4), m(3, 4), weight=m.const(3, 4, kind="pos")),
        Sample("weight_none", m(3, 4), m(3, 4), weight=m.const(3, 4, kind="pos"), reduction="none"),
        Sample("empty_sum", m(0, 3), m(0, 3), reduction="sum"),
        Sample("empty_mean", m(0, 3), m(0, 3), gradcheck=False),
        Sample("legacy_size_average_False", m(3, 4), m(3, 4), size_average=False),
        Sample("legacy_reduce_False", m(3, 4), m(3, 4), reduce=False),
    ]
    return out


def _regression_errors(op: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("bad reduction", m(2, 3), m(2, 3), reduction="avg",
                  exc=ValueError, match=rf"{op}.*avg"),
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=ValueError,
                  match=rf"{op}.*\(2, 3\).*\(4, 3\)"),
        ErrorCase("weight not input's shape", m(3, 4), m(3, 4), weight=m.const(4), exc=ValueError,
                  match=rf"{op}.*weight.*\(4,\).*\(3, 4\)"),
    ]


def _class_loss_samples(m: Maker, nll: bool) -> list[Sample]:
    x = m
    out = []
    for red in ("mean", "sum", "none"):
        out.append(Sample(f"{red}", x(4, 5), m.labels(4, classes=5), reduction=red))
        out.append(Sample(f"weight_{red}", x(4, 5), m.labels(4, classes=5),
                          weight=m.const(5, kind="pos"), reduction=red))
    t = m.ints(5, high=4)
    t[[1, 3]] = 2
    out += [
        Sample("ignore_index", x(5, 4), Const(t), ignore_index=2),
        Sample("ignore_index_weight_mean", x(5, 4), Const(t), ignore_index=2,
               weight=m.const(4, kind="pos")),
        Sample("ignore_default_-100", x(3, 4), Const(np.array([1, -100, 3]))),
        Sample("spatial_2x3x4x5", x(2, 3, 4, 5), m.labels(2, 4, 5, classes=3)),
        Sample("spatial_none", x(2, 3, 5), m.labels(2, 5, classes=3), reduction="none"),
        Sample("batch1", x(1, 6), m.labels(1, classes=6)),
        Sample("unbatched_0d_target", x(5), Const(np.array(3))),
        Sample("noncontig", x(5, 4, layout="T"), m.labels(5, classes=4)),
        Sample("all_ignored_mean", x(2, 3), Const(np.array([-100, -100])), gradcheck=False),
        Sample("all_ignored_sum", x(2, 3), Const(np.array([1, 1])), ignore_index=1,
               reduction="sum"),
        Sample("legacy_size_average_False", x(4, 5), m.labels(4, classes=5), size_average=False),
        Sample("legacy_reduce_False", x(4, 5), m.labels(4, classes=5), reduce=False),
    ]
    if not nll:
        out += [
            Sample("label_smoothing", x(4, 5), m.labels(4, classes=5), label_smoothing=0.2),
            Sample("label_smoothing_weight_ignore", x(5, 4), Const(t), ignore_index=2,
                   weight=m.const(4, kind="pos"), label_smoothing=0.3),
            Sample("label_smoothing_none", x(4, 5), m.labels(4, classes=5),
                   label_smoothing=0.1, reduction="none"),
            Sample("prob_target", x(3, 4), m.probs(3, 4)),
            Sample("prob_target_grad", x(3, 4), m(3, 4, kind="unit")),
            Sample("prob_target_weight_smooth", x(3, 4), m.probs(3, 4),
                   weight=m.const(4, kind="pos"), label_smoothing=0.2),
            Sample("prob_target_spatial_none", x(2, 3, 4), m.probs(2, 3, 4), reduction="none"),
        ]
    return out


def _class_loss_errors(op: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("target out of range", m(2, 3), Const(np.array([0, 3])),
                  exc=ValueError, match=rf"{op}.*3.*out of range"),
        ErrorCase("float target for indices", m(2, 3), Const(np.zeros(2, m.dtype)),
                  exc=(ValueError, TypeError), match=rf"{op}"),
        ErrorCase("batch mismatch", m(2, 3), Const(np.array([0, 1, 2])),
                  exc=ValueError, match=rf"{op}.*\(2, 3\).*\(3,\)"),
        ErrorCase("weight size", m(2, 3), Const(np.array([0, 1])), weight=m.const(4),
                  exc=ValueError, match=rf"{op}.*weight.*\(4,\)"),
        ErrorCase("spatial target rank", m(2, 3, 4), Const(np.array([0, 1])),
                  exc=ValueError, match=rf"{op}.*\(2,\).*\(2, 3, 4\)"),
    ]


def _conv_samples(m: Maker) -> list[Sample]:
    # input shape, weight shape, bias, stride, padding, dilation, groups
    cases = [
        ("3x3_pad1", (2, 3, 7, 6), (4, 3, 3, 3), True, 1, 1, 1, 1),
        ("batch1_1x1", (1, 3, 5, 5), (2, 3, 1, 1), True, 1, 0, 1, 1),
        ("nobias_stride2", (2, 2, 7, 7), (3, 2, 3, 3), False, 2, 1, 1, 1),
        ("stride3_pad2", (1, 2, 8, 7), (2, 2, 3, 3), True, 3, 2, 1, 1),
        ("dilation2", (1, 2, 7, 7), (2, 2, 3, 3), True, 1, 2, 2, 1),
        ("asymmetric", (1, 4, 7, 6), (4, 2, 3, 2), True, (2, 1), (1, 0), (1, 2), 2),
        ("groups2", (2, 4, 5, 5), (6, 2, 3, 3), True, 1, 1, 1, 2),
        ("depthwise", (1, 3, 5, 5), (3, 1, 3, 3), True, 1, 1, 1, 3),
        ("kernel_eq_input", (2, 2, 3, 3), (3, 2, 3, 3), True, 1, 0, 1, 1),
        # the shape classes with their own kernel paths: one input channel (LeNet's
        # first layer), few input channels at 5x5, strided 4x4 (a DCGAN discriminator),
        # strided and dilated depthwise, strided groups, odd sizes throughout
        ("cin1_5x5_pad2", (2, 1, 9, 8), (3, 1, 5, 5), True, 1, 2, 1, 1),
        ("cin6_5x5", (2, 6, 9, 9), (5, 6, 5, 5), True, 1, 0, 1, 1),
        ("cin8_5x5_dilation2", (1, 8, 11, 12), (4, 8, 5, 5), False, 1, 1, 2, 1),
        ("cin3_4x4_stride2", (2, 3, 9, 11), (4, 3, 4, 4), False, 2, 1, 1, 1),
        ("depthwise_stride2_odd", (2, 4, 9, 7), (4, 1, 3, 3), True, 2, 1, 1, 4),
        ("depthwise_5x5_dilated", (1, 3, 11, 10), (3, 1, 5, 5), False, (1, 2), 2, (2, 1), 3),
        ("groups2_stride2", (2, 8, 7, 9), (6, 4, 3, 3), True, 2, 1, 1, 2),
        # depthwise with channels along the lanes, in blocks of 64: a part block
        ("depthwise_66ch_3x3", (1, 66, 3, 3), (66, 1, 3, 3), True, 1, 1, 1, 66),
        # 1x1 on a plane under 16 pixels: one product over the batch
        ("1x1_2x2_planes", (3, 5, 2, 2), (4, 5, 1, 1), True, 1, 0, 1, 1),
        # 1x1 on planes of 512 pixels or more: pixels along the lanes, on NCHW
        ("1x1_pixel_lanes", (2, 5, 16, 32), (7, 5, 1, 1), True, 1, 0, 1, 1),
        ("1x1_pixel_lanes_groups3", (1, 6, 32, 32), (9, 2, 1, 1), False, 1, 0, 1, 3),
        # 1x1 at stride 2 or 3 (projection shortcuts): the stride-1 layer on the
        # subsampled input, its input gradient spread back
        ("1x1_stride2_groups2", (2, 6, 9, 8), (8, 3, 1, 1), True, 2, 0, 1, 2),
        ("1x1_stride_3x2", (1, 4, 10, 7), (5, 4, 1, 1), False, (3, 2), 0, 1, 1),
    ]
    out = []
    for desc, xs, ws, b, s, p, d, g in cases:
        out.append(Sample(desc, m(*xs), m(*ws), m(ws[0]) if b else None,
                          stride=s, padding=p, dilation=d, groups=g))
    out += [
        Sample("padding_same", m(1, 2, 5, 6), m(3, 2, 3, 2), m(3), padding="same"),
        Sample("padding_same_dilated", m(1, 2, 6, 5), m(2, 2, 3, 3), None, padding="same",
               dilation=2),
        Sample("padding_valid", m(1, 2, 5, 6), m(3, 2, 3, 3), m(3), padding="valid"),
        Sample("unbatched", m(2, 5, 5), m(3, 2, 3, 3), m(3), padding=1),
        Sample("noncontig_input_weight", m(1, 2, 5, 6, layout="T"), m(3, 2, 3, 3, layout="step"),
               m(3), padding=1),
        Sample("empty_batch", m(0, 2, 5, 5), m(3, 2, 3, 3), m(3)),
    ]
    return out


def _conv_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("channel mismatch", m(2, 3, 5, 5), m(4, 2, 3, 3), exc=ValueError,
                  match=r"conv2d.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"),
        ErrorCase("kernel larger than input", m(1, 2, 2, 2), m(3, 2, 3, 3), exc=ValueError,
                  match=r"conv2d.*\(1, 2, 2, 2\)"),
        ErrorCase("2d input", m(2, 5), m(3, 2, 3, 3), exc=ValueError, match=r"conv2d.*\(2, 5\)"),
        ErrorCase("groups not dividing", m(1, 4, 5, 5), m(3, 2, 3, 3), groups=2,
                  exc=ValueError, match=r"conv2d.*groups"),
        ErrorCase("bias size", m(1, 2, 5, 5), m(3, 2, 3, 3), m(4), exc=ValueError,
                  match=r"conv2d.*bias.*\(4,\)"),
        ErrorCase("stride 0", m(1, 2, 5, 5), m(3, 2, 3, 3), stride=0, exc=ValueError,
                  match=r"conv2d.*stride"),
        ErrorCase("same with stride", m(1, 2, 5, 5), m(3, 2, 3, 3), stride=2, padding="same",
                  exc=ValueError, match=r"conv2d.*same.*stride"),
        ErrorCase("dtype mismatch", m(1, 2, 5, 5), Const(m(3, 2, 3, 3, dtype=F64)),
                  exc=(TypeError, ValueError), match=r"conv2d.*float(32|64).*float(32|64)"),
    ]


def _conv_t_samples(m: Maker) -> list[Sample]:
    # input, weight (C_in, C_out/groups, kh, kw), bias, stride, padding, output_padding,
    # groups, dilation
    cases = [
        ("3x3", (2, 3, 4, 5), (3, 2, 3, 3), True, 1, 0, 0, 1, 1),
        ("stride2_pad1_outpad1", (1, 2, 4, 4), (2, 3, 3, 3), True, 2, 1, 1, 1, 1),
        ("batch1_nobias", (1, 2, 3, 3), (2, 2, 2, 2), False, 2, 0, 0, 1, 1),
        ("asymmetric", (1, 2, 3, 4), (2, 2, 3, 2), True, (2, 1), (1, 0), (1, 0), 1, (1, 2)),
        ("groups2", (2, 4, 3, 3), (4, 1, 3, 3), True, 1, 1, 0, 2, 1),
        ("dilation2", (1, 2, 4, 4), (2, 2, 3, 3), True, 1, 1, 0, 1, 2),
        # DCGAN's 4x4 stride-2 layers (down to 3 channels, odd sizes) and a depthwise one
        ("4x4_stride2_pad1", (2, 6, 3, 5), (6, 4, 4, 4), False, 2, 1, 0, 1, 1),
        ("to3_4x4_stride2_outpad1", (1, 5, 5, 3), (5, 3, 4, 4), True, 2, 1, 1, 1, 1),
        ("depthwise_stride2", (2, 3, 4, 5), (3, 1, 3, 3), True, 2, 1, 1, 3, 1),
        # 1x1 at stride 2 with output padding: the stride-1 1x1 spread onto the
        # strided pixels (zero between and in the padding)
        ("1x1_stride2_outpad1", (2, 4, 3, 5), (4, 3, 1, 1), True, 2, 0, 1, 1, 1),
    ]
    out = [Sample(d, m(*xs), m(*ws), m(ws[1] * g) if b else None, stride=s, padding=p,
                  output_padding=op, groups=g, dilation=dl)
           for d, xs, ws, b, s, p, op, g, dl in cases]
    out += [
        Sample("unbatched", m(2, 3, 3), m(2, 3, 3, 3), m(3), stride=2),
        Sample("noncontig", m(1, 2, 4, 3, layout="T"), m(2, 2, 3, 3, layout="step"), None),
    ]
    return out


def _conv_t_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("channel mismatch", m(1, 3, 4, 4), m(2, 2, 3, 3), exc=ValueError,
                  match=r"conv_transpose2d.*\(1, 3, 4, 4\).*\(2, 2, 3, 3\)"),
        ErrorCase("output_padding too large", m(1, 2, 4, 4), m(2, 2, 3, 3), stride=1,
                  output_padding=1, exc=ValueError, match=r"conv_transpose2d.*output_padding"),
    ]


def _pool_input(m: Maker, *shape: int, layout: str | None = None) -> Any:
    return m(*shape, kind="distinct", layout=layout)


def _max_pool_samples(m: Maker) -> list[Sample]:
    x = lambda *s, **k: _pool_input(m, *s, **k)  # noqa: E731
    return [
        Sample("k2", x(2, 3, 6, 6), 2),
        Sample("k3_s2_p1", x(1, 2, 7, 7), 3, 2, 1),
        Sample("k3_s2_ceil", x(1, 2, 6, 6), 3, 2, ceil_mode=True),
        Sample("k3_s2_p1_ceil", x(1, 2, 8, 7), 3, 2, 1, ceil_mode=True),
        Sample("asym_dilation", x(1, 2, 7, 8), (2, 3), 1, (1, 0), (2, 1)),
        Sample("return_indices", x(2, 2, 5, 5), 2, return_indices=True),
        Sample("stride_none_odd", x(1, 1, 5, 7), (2, 3)),
        Sample("unbatched", x(2, 5, 5), 2),
        Sample("noncontig", x(1, 2, 6, 5, layout="T"), 2, 1),
        Sample("batch1_global", x(1, 3, 4, 4), 4),
        Sample("return_indices_ceil_pad", x(1, 2, 7, 6), 3, 2, 1, ceil_mode=True,
               return_indices=True),
        Sample("unbatched_return_indices", x(2, 5, 5), 2, return_indices=True),
        Sample("stride_gt_kernel", x(1, 1, 7, 7), 2, 3),
    ]


def _avg_pool_samples(m: Maker) -> list[Sample]:
    out = [
        Sample("k2", m(2, 3, 6, 6), 2),
        Sample("k3_s2_p1", m(1, 2, 7, 7), 3, 2, 1),
        Sample("k3_s2_p1_exclude_pad", m(1, 2, 7, 7), 3, 2, 1, count_include_pad=False),
        Sample("ceil", m(1, 2, 6, 6), 3, 2, ceil_mode=True),
        Sample("ceil_p1_exclude_pad", m(1, 2, 8, 7), 3, 2, 1, ceil_mode=True,
               count_include_pad=False),
        Sample("ceil_p1_include_pad", m(1, 2, 8, 7), 3, 2, 1, ceil_mode=True),
        Sample("divisor_override", m(1, 2, 5, 5), 2, divisor_override=3),
        Sample("asym", m(1, 2, 7, 8), (2, 3), (1, 2), (1, 0)),
        Sample("unbatched", m(2, 5, 5), 2),
        Sample("noncontig", m(1, 2, 6, 5, layout="step"), 2, 1),
        Sample("ceil_last_window_in_padding", m(1, 1, 5, 5), 2, 2, 1, ceil_mode=True),
        Sample("stride_gt_kernel", m(1, 1, 7, 7), 2, 3),
    ]
    return out


def _adaptive_samples(m: Maker, maxpool: bool) -> list[Sample]:
    kind = "distinct" if maxpool else "randn"
    out = [
        Sample("to_1", m(2, 3, 5, 5, kind=kind), 1),
        Sample("to_2x3", m(1, 2, 5, 7, kind=kind), (2, 3)),
        Sample("to_None_2", m(1, 2, 4, 5, kind=kind), (None, 2)),
        Sample("upsample_7", m(1, 1, 5, 4, kind=kind), 7),
        Sample("unbatched", m(2, 6, 6, kind=kind), 4),
        Sample("noncontig", m(1, 2, 6, 5, kind=kind, layout="T"), 3),
    ]
    if maxpool:
        out.append(Sample("return_indices", m(1, 2, 5, 5, kind=kind), 2, return_indices=True))
    return out


def _batch_norm_samples(m: Maker) -> list[Sample]:
    rm = lambda c: m.const(c)  # noqa: E731
    rv = lambda c: m.const(c, kind="pos")  # noqa: E731
    return [
        Sample("eval_4d", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3)),
        Sample("train_4d", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3), training=True),
        Sample("train_no_stats", m(3, 2, 3, 3), None, None, m(2), m(2), training=True),
        Sample("train_no_affine", m(2, 3, 3, 3), rm(3), rv(3), training=True, momentum=0.3),
        Sample("eval_no_affine", m(2, 3, 3, 3), rm(3), rv(3)),
        Sample("train_2d", m(4, 3), rm(3), rv(3), m(3), m(3), training=True),
        Sample("eval_2d", m(4, 3), rm(3), rv(3), m(3), m(3)),
        Sample("train_3d", m(2, 3, 5), rm(3), rv(3), m(3), m(3), training=True, eps=1e-3),
        Sample("train_batch1_spatial", m(1, 2, 3, 3), rm(2), rv(2), m(2), m(2), training=True),
        Sample("noncontig", m(2, 3, 4, 5, layout="T"), rm(3), rv(3), m(3), m(3), training=True),
        Sample("empty_1d_train", m(0), rm(0), rv(0), training=True),
        Sample("empty_1d_eval_affine", m(0), rm(3), rv(3), m(3), m(3)),
        Sample("empty_1d_train_no_stats", m(0), None, None, training=True),
        Sample("empty_batch_train_affine", m(0, 3, 2), rm(3), rv(3), m(3), m(3), training=True),
        # planes of up to 64 values run by channel spans (here 7, the last one short),
        # larger planes row by row
        Sample("train_small_planes", m(3, 20, 2, 2), rm(20), rv(20), m(20), m(20),
               training=True),
        Sample("train_large_planes", m(2, 3, 9, 9), rm(3), rv(3), m(3), m(3), training=True),
    ]


def _batch_norm_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("running_mean size", m(2, 3, 4, 4), m.const(4), m.const(3, kind="pos"),
                  exc=ValueError, match=r"batch_norm.*running_mean.*\(4,\)"),
        ErrorCase("one value per channel", m(1, 3), m.const(3), m.const(3, kind="pos"),
                  training=True, exc=ValueError, match=r"batch_norm.*\(1, 3\)"),
        ErrorCase("weight size", m(2, 3, 2, 2), m.const(3), m.const(3, kind="pos"), m(2),
                  exc=ValueError, match=r"batch_norm.*weight.*\(2,\)"),
        ErrorCase("eval without running stats", m(2, 3), None, None,
                  exc=(ValueError, RuntimeError), match=r"batch_norm.*running"),
    ]


def _torch_batch_norm_relu(input: Any, running_mean: Any, running_var: Any,  # noqa: A002
                           weight: Any = None, bias: Any = None, training: bool = False,
                           momentum: float = 0.1, eps: float = 1e-5,
                           residual: Any = None) -> Any:
    """What kiln's fused F.batch_norm_relu equals: relu(batch_norm(...) + residual)."""
    import torch
    import torch.nn.functional as tf
    out = tf.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return torch.relu(out if residual is None else out + residual)


def _batch_norm_relu_samples(m: Maker) -> list[Sample]:
    rm = lambda c: m.const(c)  # noqa: E731
    rv = lambda c: m.const(c, kind="pos")  # noqa: E731
    return [
        Sample("eval_4d", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3)),
        Sample("train_4d", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3), training=True),
        Sample("train_residual", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3), training=True,
               residual=m(2, 3, 4, 4)),
        Sample("eval_residual", m(2, 3, 3, 3), rm(3), rv(3), m(3), m(3),
               residual=m(2, 3, 3, 3)),
        Sample("train_residual_const", m(3, 2, 3, 3), rm(2), rv(2), m(2), m(2),
               training=True, residual=m.const(3, 2, 3, 3)),
        Sample("train_no_stats", m(3, 2, 3, 3), None, None, m(2), m(2), training=True),
        Sample("train_no_affine", m(2, 3, 3, 3), rm(3), rv(3), training=True, momentum=0.3,
               residual=m(2, 3, 3, 3)),
        Sample("train_2d", m(4, 3), rm(3), rv(3), m(3), m(3), training=True),
        Sample("train_3d", m(2, 3, 5), rm(3), rv(3), m(3), m(3), training=True, eps=1e-3),
        Sample("train_batch1_spatial", m(1, 2, 3, 3), rm(2), rv(2), m(2), m(2), training=True,
               residual=m(1, 2, 3, 3)),
        Sample("noncontig", m(2, 3, 4, 5, layout="T"), rm(3), rv(3), m(3), m(3),
               training=True, residual=m(2, 3, 4, 5, layout="step")),
        Sample("empty_1d_train", m(0), rm(0), rv(0), training=True),
        Sample("empty_batch_train_residual", m(0, 3, 2), rm(3), rv(3), m(3), m(3),
               training=True, residual=m(0, 3, 2)),
        Sample("train_small_planes", m(3, 20, 2, 2), rm(20), rv(20), m(20), m(20),
               training=True, residual=m(3, 20, 2, 2)),
        Sample("train_large_planes", m(2, 3, 9, 9), rm(3), rv(3), m(3), m(3), training=True,
               residual=m(2, 3, 9, 9)),
    ]


def _batch_norm_relu_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("running_mean size", m(2, 3, 4, 4), m.const(4), m.const(3, kind="pos"),
                  exc=ValueError, match=r"batch_norm_relu.*running_mean.*\(4,\)"),
        ErrorCase("one value per channel", m(1, 3), m.const(3), m.const(3, kind="pos"),
                  training=True, exc=ValueError, match=r"batch_norm_relu.*\(1, 3\)"),
        ErrorCase("residual shape", m(2, 3, 4, 4), m.const(3), m.const(3, kind="pos"),
                  residual=m(2, 3, 4, 5), exc=(ValueError, RuntimeError),
                  match=r"batch_norm_relu.*residual.*\(2, 3, 4, 5\)"),
        ErrorCase("residual not a tensor", m(2, 3, 4), m.const(3), m.const(3, kind="pos"),
                  residual=1.0, exc=TypeError, match=r"batch_norm_relu: residual",
                  torch_raises=False),
    ]


def _layer_norm_samples(m: Maker) -> list[Sample]:
    return [
        Sample("2d_last_dim", m(4, 5), (5,), m(5), m(5)),
        Sample("3d_two_dims", m(2, 3, 4), (3, 4), m(3, 4), m(3, 4)),
        Sample("whole_input_list", m(2, 3), [2, 3], m(2, 3), m(2, 3)),
        Sample("no_affine", m(3, 6), (6,)),
        Sample("weight_only", m(2, 3, 4), (4,), m(4)),
        Sample("bias_only_kw", m(2, 3, 4), (4,), bias=m(4)),
        Sample("eps", m(3, 5), (5,), m(5), m(5), eps=1e-2),
        Sample("batch1_4d", m(1, 2, 3, 2), (2, 3, 2), m(2, 3, 2), m(2, 3, 2)),
        Sample("1d_input", m(5), (5,), m(5), m(5)),
        Sample("noncontig_input", m(4, 3, layout="T"), (3,), m(3), m(3)),
        Sample("noncontig_weight", m(3, 4), (4,), m(4, layout="step"), m(4)),
        Sample("empty_rows", m(0, 4), (4,), m(4), m(4)),
    ]


def _layer_norm_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("shape mismatch", m(2, 3, 4), (3, 5), exc=ValueError,
                  match=r"layer_norm.*\(3, 5\).*\(2, 3, 4\)"),
        ErrorCase("longer than input", m(2, 3), (1, 2, 3), exc=ValueError,
                  match=r"layer_norm.*\(1, 2, 3\).*\(2, 3\)"),
        ErrorCase("empty normalized_shape", m(2, 3), (), exc=ValueError,
                  match=r"layer_norm.*normalized_shape"),
        ErrorCase("int normalized_shape", m(2, 3), 3, exc=TypeError,
                  match=r"layer_norm.*normalized_shape"),
        ErrorCase("weight shape", m(2, 3, 4), (4,), m(3), exc=ValueError,
                  match=r"layer_norm.*weight.*\(3,\)"),
        ErrorCase("int input", m.ints(2, 3), (3,), exc=TypeError, match=r"layer_norm.*int64"),
    ]


def _instance_norm_samples(m: Maker) -> list[Sample]:
    rm = lambda c: m.const(c)  # noqa: E731
    rv = lambda c: m.const(c, kind="pos")  # noqa: E731
    return [
        Sample("3d", m(2, 3, 5)),
        Sample("4d_affine", m(2, 3, 4, 4), None, None, m(3), m(3)),
        Sample("running_stats", m(2, 3, 4, 5), rm(3), rv(3), m(3), m(3), momentum=0.2),
        Sample("running_stats_no_affine", m(3, 2, 6), rm(2), rv(2)),
        Sample("eval_running_stats", m(2, 3, 4, 4), rm(3), rv(3), m(3), m(3),
               use_input_stats=False),
        Sample("batch1", m(1, 2, 3, 3), None, None, m(2), m(2)),
        Sample("noncontig", m(2, 3, 4, 5, layout="T"), None, None, m(3), m(3)),
        Sample("5d", m(2, 2, 2, 3, 2), None, None, m(2)),
        Sample("eps_bias_only", m(2, 3, 4), None, None, None, m(3), eps=1e-2),
        Sample("empty_batch", m(0, 3, 4)),
    ]


def _instance_norm_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("one spatial value", m(2, 3, 1), exc=ValueError,
                  match=r"instance_norm.*spatial.*\(2, 3, 1\)"),
        ErrorCase("2d input", m(2, 3), exc=ValueError, match=r"instance_norm.*\(2, 3\)"),
        ErrorCase("running_mean alone", m(2, 3, 4), m.const(3), exc=ValueError,
                  match=r"instance_norm.*running_mean and running_var"),
        ErrorCase("running_mean size", m(2, 3, 4), m.const(4), m.const(4, kind="pos"),
                  exc=ValueError, match=r"instance_norm.*running_mean.*\(4,\)"),
        ErrorCase("weight size", m(2, 3, 4), None, None, m(4), exc=ValueError,
                  match=r"instance_norm.*weight.*\(4,\)"),
        ErrorCase("eval without running stats", m(2, 3, 4), use_input_stats=False,
                  exc=ValueError, match=r"instance_norm.*running"),
    ]


def _local_response_norm_samples(m: Maker) -> list[Sample]:
    return [
        Sample("3d_size2", m(2, 5, 4), 2, 0.5),
        Sample("4d_size3", m(2, 5, 3, 3), 3, 0.3),
        Sample("defaults_size5", m(1, 7, 2, 3), 5),
        Sample("alpha_beta_k_kw", m(2, 4, 3, 3), 3, alpha=0.5, beta=0.6, k=2.0),
        Sample("size1", m(2, 3, 4), 1, 0.4),
        Sample("size_beyond_channels", m(2, 3, 4), 7, 1.0, 1.2),
        Sample("5d", m(2, 4, 2, 2, 2), 2, 0.3),
        Sample("noncontig", m(2, 4, 3, 5, layout="T"), 4, 0.5),
        Sample("empty", m(0, 3, 4), 2),
    ]


def _local_response_norm_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("2d input", m(3, 4), 2, exc=ValueError,
                  match=r"local_response_norm.*\(3, 4\)"),
        ErrorCase("size 0", m(2, 3, 4), 0, exc=ValueError, match=r"local_response_norm.*size"),
        ErrorCase("float size", m(2, 3, 4), 2.5, exc=TypeError,
                  match=r"local_response_norm.*size"),
    ]


def _fractional_samples(m: Maker) -> list[Sample]:
    x = lambda *s, **k: _pool_input(m, *s, **k)  # noqa: E731
    u = lambda *s: m.const(*s, kind="unit")  # noqa: E731
    edges = Const(np.array([[[0.0, 0.999], [0.999, 0.0]]], m.dtype))
    return [
        Sample("k2_out3", x(2, 3, 7, 9), 2, 3, _random_samples=u(2, 3, 2)),
        Sample("pairs", x(1, 2, 8, 7), (3, 2), (4, 5), _random_samples=u(1, 2, 2)),
        Sample("ratio_pair", x(2, 2, 10, 9), 2, output_ratio=(0.5, 0.7),
               _random_samples=u(2, 2, 2)),
        Sample("return_indices", x(2, 2, 6, 6), 2, 3, None, True, u(2, 2, 2)),
        Sample("unbatched", x(3, 7, 7), 2, 4, _random_samples=u(1, 3, 2)),
        Sample("unbatched_return_indices", x(2, 6, 5), (2, 3), (3, 2), return_indices=True,
               _random_samples=u(1, 2, 2)),
        Sample("more_samples_than_batch", x(1, 2, 6, 6), 2, 3, _random_samples=u(3, 2, 2)),
        Sample("to_1x1", x(1, 1, 5, 5), 3, 1, _random_samples=u(1, 1, 2)),
        Sample("kernel1_identity", x(1, 2, 6, 5), 1, (6, 5), _random_samples=u(1, 2, 2)),
        Sample("edge_samples", x(1, 2, 9, 8), 2, (5, 4), _random_samples=edges),
        Sample("noncontig", x(1, 2, 7, 6, layout="T"), 2, 3, _random_samples=u(1, 2, 2)),
        Sample("batch1_odd", x(1, 3, 11, 5), (3, 1), (7, 4), _random_samples=u(1, 3, 2)),
        Sample("empty_batch", x(0, 2, 6, 6), 2, 3, _random_samples=u(1, 2, 2)),
        Sample("output_0", x(1, 1, 5, 5), 2, 0, _random_samples=u(1, 1, 2)),
    ]


def _fractional_errors(m: Maker) -> list[ErrorCase]:
    u = lambda *s: m.const(*s, kind="unit")  # noqa: E731
    other = F64 if m.dtype == F32 else F32
    return [
        ErrorCase("no size or ratio", m(1, 1, 5, 5), 2, _random_samples=u(1, 1, 2),
                  exc=ValueError, match=r"fractional_max_pool2d.*output_size"),
        ErrorCase("pool too large", m(1, 1, 5, 5), 3, 4, _random_samples=u(1, 1, 2),
                  exc=ValueError, match=r"fractional_max_pool2d.*\(1, 1, 5, 5\)"),
        ErrorCase("samples batch", m(2, 3, 7, 7), 2, 3, _random_samples=u(1, 3, 2),
                  exc=ValueError, match=r"fractional_max_pool2d.*_random_samples.*\(1, 3, 2\)"),
        ErrorCase("samples last dim", m(1, 3, 7, 7), 2, 3, _random_samples=u(1, 3, 3),
                  exc=ValueError, match=r"fractional_max_pool2d.*_random_samples.*\(1, 3, 3\)"),
        ErrorCase("samples dtype", m(1, 1, 7, 7), 2, 3,
                  _random_samples=Const(m(1, 1, 2, kind="unit", dtype=other)),
                  exc=TypeError, match=r"fractional_max_pool2d.*_random_samples"),
        ErrorCase("2d input", m(5, 5), 2, 2, exc=ValueError,
                  match=r"fractional_max_pool2d.*\(5, 5\)"),
        ErrorCase("empty channels", m(1, 0, 5, 5), 2, 2, exc=ValueError,
                  match=r"fractional_max_pool2d.*\(1, 0, 5, 5\)"),
        ErrorCase("int input", m.ints(1, 1, 5, 5), 2, 2, exc=TypeError,
                  match=r"fractional_max_pool2d.*int64"),
    ]


def _pad_samples(m: Maker) -> list[Sample]:
    out = [
        Sample("constant_last", m(2, 3, 4), (1, 2)),
        Sample("constant_value", m(2, 3, 4), (1, 0, 2, 1), value=1.5),
        Sample("constant_3dims", m(2, 3, 4), (1, 1, 0, 2, 1, 0)),
        Sample("constant_negative_crop", m(2, 5, 6), (-1, 2, -2, 0)),
        Sample("constant_1d", m(5), (2, 3)),
        Sample("constant_empty", m(0, 3), (1, 1)),
        Sample("noncontig", m(2, 4, 3, layout="T"), (1, 1, 1, 1)),
    ]
    for mode in ("reflect", "replicate", "circular"):
        out += [
            Sample(f"{mode}_3d", m(2, 3, 5), (2, 1), mode=mode),
            Sample(f"{mode}_4d", m(1, 2, 4, 5), (1, 2, 2, 1), mode=mode),
            Sample(f"{mode}_unbatched_2d", m(2, 4, 4), (1, 1, 2, 0), mode=mode),
        ]
    out += [
        Sample("reflect_5d", m(1, 1, 3, 3, 4), (1, 1, 1, 1, 1, 1), mode="reflect"),
        Sample("reflect_unbatched_1d", m(3, 5), (2, 1), mode="reflect"),
        Sample("replicate_wider_than_input", m(1, 2, 3), (4, 5), mode="replicate"),
        Sample("constant_crop_to_empty", m(2, 3), (-2, -1)),
        # a negative amount crops first and the kept span wraps, as PyTorch
        Sample("circular_negative", m(1, 2, 5), (-1, 2), mode="circular"),
        Sample("circular_negative_before_crop", m(1, 2, 5), (2, -1), mode="circular"),
        Sample("circular_negative_2d", m(1, 1, 4, 5), (3, -2, -1, 1), mode="circular"),
    ]
    return out


def _pad_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("odd length", m(2, 3), (1, 2, 3), exc=ValueError, match=r"pad.*divisible by 2"),
        ErrorCase("bad mode", m(2, 3, 4), (1, 1), mode="wrap",
                  exc=(ValueError, NotImplementedError),
                  match=r"pad.*wrap"),
        ErrorCase("reflect too wide", m(1, 2, 3), (3, 0), mode="reflect", exc=ValueError,
                  match=r"pad.*\(1, 2, 3\)"),
        ErrorCase("too many dims", m(4), (1, 1, 1, 1), exc=ValueError, match=r"pad"),
        ErrorCase("circular wider than input", m(1, 2, 3), (4, 0), mode="circular",
                  exc=ValueError, match=r"pad.*\(1, 2, 3\)"),
        # PyTorch rejects this one-channel case as an overlapping copy (with more channels
        # it returns values that depend on its copy order)
        ErrorCase("circular wider than the cropped span", m(1, 1, 5), (-2, 4), mode="circular",
                  exc=ValueError, match=r"pad.*\(-2, 4\).*3 after cropping.*\(1, 1, 5\)"),
        ErrorCase("value with reflect", m(1, 2, 4), (1, 1), mode="reflect", value=1.0,
                  exc=(ValueError, NotImplementedError), match=r"pad.*value"),
    ]


def _matmul_samples(m: Maker) -> list[Sample]:
    return [
        Sample("2d_2d", m(3, 4), m(4, 5)),
        Sample("1d_1d", m(4), m(4)),
        Sample("1d_2d", m(4), m(4, 3)),
        Sample("2d_1d", m(3, 4), m(4)),
        Sample("3d_2d", m(2, 3, 4), m(4, 2)),
        Sample("2d_3d", m(3, 4), m(2, 4, 2)),
        Sample("bcast_batch", m(2, 1, 3, 4), m(3, 4, 2)),
        Sample("1d_3d", m(4), m(2, 4, 3)),
        Sample("3d_1d", m(2, 3, 4), m(4)),
        Sample("transposed", m(3, 4, layout="T"), m(4, 2, layout="T")),
        Sample("empty_inner", m(3, 0), m(0, 2)),
        Sample("batch1", m(1, 1, 4), m(1, 4, 1)),
        Sample("int64", m.ints(2, 3), m.ints(3, 2)),
    ]


def _matmul_errors(op: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("inner mismatch", m(2, 3), m(4, 5), exc=RuntimeError,
                  match=rf"{op}.*\(2, 3\).*\(4, 5\)"),
        ErrorCase("0d operand", m(), m(3), exc=RuntimeError, match=rf"{op}"),
        ErrorCase("dtype mismatch", m(2, 3), Const(m(3, 2, dtype=F64)),
                  exc=RuntimeError, match=rf"{op}.*float(32|64).*float(32|64)"),
    ]


def _binary_errors(name: str, sym: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=RuntimeError,
                  match=rf"({name}|{re.escape(sym)}).*The size of tensor a \(2\) must match "
                        rf"the size of tensor b \(4\) at non-singleton dimension 0.*"
                        rf"\(2, ?3\).*\(4, ?3\)"),
    ]


def _int_pow_samples(m: Maker) -> list[Sample]:
    """Integer and mixed pow of two tensors: negative integer exponents give values
    (1 ** -n = 1, (-1) ** -n = +-1, 0 elsewhere), as PyTorch; promotion with floats and bools."""
    base = np.array([2, 1, -1, 0, -2, 3])
    return [
        Sample("int_negative_exps", base, np.array([-1, -1, -1, -2, -3, 0])),
        Sample("int_0d_negative_exp", base, np.array(-1)),
        Sample("int_bcast_negative_exps", np.array([[2], [-1]]), np.array([-1, -2, 3])),
        Sample("int32_int32_negative_exps", np.array([2, -1, 1], np.int32),
               np.array([-1, -3, -5], np.int32)),
        Sample("int32_int64", np.array([2, 1], np.int32), np.array([3, -1])),
        Sample("uint8_int64", np.array([2, 1], np.uint8), np.array([3, -1])),
        Sample("bool_int", np.array([True, False]), np.array([2, -1])),
        Sample("int_bool", base, np.array([True, False] * 3)),
        Sample("float_int_negative_exps", m(2, 3, kind="pos"), np.array([[-1, 2, 0], [3, -2, 1]])),
        Sample("int_float", np.array([2, 1, 3, 4, 1, 5]), m(6, kind="pos")),
        Sample("int_float_negative_bases", base, m(6, kind="pos"), gradcheck=False),
        Sample("int_0d_float", base, Const(np.array(-1.0, m.dtype))),
        # PyTorch's own backward fails for a bool exponent (it subtracts 1 from it)
        Sample("float_bool", Const(m(2, kind="pos")), np.array([True, False])),
        Sample("int_overflow_wraps", np.array([2, 3]), np.array([70, 70])),
    ]


def _reduce_samples(m: Maker, kind: str = "randn") -> list[Sample]:
    return [
        Sample("all", m(2, 3, 4, kind=kind)),
        Sample("dim0", m(3, 4, kind=kind), 0),
        Sample("dim-1_keepdim", m(2, 3, 4, kind=kind), -1, keepdim=True),
        Sample("dims_tuple", m(2, 3, 4, kind=kind), (0, 2)),
        Sample("dims_tuple_keepdim", m(2, 3, 4, kind=kind), (0, -1), keepdim=True),
        Sample("kw_dim", m(3, 5, kind=kind), dim=1),
        Sample("0d", m(kind=kind)),
        Sample("0d_dim0", m(kind=kind), 0),
        Sample("noncontig", m(4, 3, kind=kind, layout="T"), 1),
        Sample("empty_dim", m(0, 3, kind=kind), 1),
        Sample("empty_all", m(0, 3, kind=kind), gradcheck=False),
        Sample("nan", np.array([[1.0, np.nan], [2.0, 3.0]], m.dtype), 1, gradcheck=False),
    ]


def _sum_samples(m: Maker) -> list[Sample]:
    return _reduce_samples(m) + [
        Sample("int_input", m.ints(3, 4), 1),
        Sample("bool_input", m.bools(3, 4)),
        Sample("uint8_input", m.ints(3, 4, high=200).astype(np.uint8), 0),
        Sample("int32_input", m.ints(3, 4).astype(np.int32)),
        Sample("dtype_f64", m(3, 4), 1, dtype=F64),
        Sample("int_dtype_int32", m.ints(3, 4), 1, dtype=np.dtype(np.int32)),
    ]


def _extreme_samples(m: Maker) -> list[Sample]:
    d = lambda *s, **k: m(*s, kind="distinct", **k)  # noqa: E731
    return [
        Sample("all", d(3, 4)),
        Sample("dim1", d(3, 4), 1),
        Sample("dim0_keepdim", d(3, 4, 2), 0, keepdim=True),
        Sample("dim-1", d(2, 3, 4), -1),
        Sample("0d", d()),
        Sample("0d_dim0", d(), 0),
        Sample("noncontig", d(4, 3, layout="T"), 0),
        Sample("batch1", d(1, 5), 1),
        Sample("nan", np.array([[1.0, np.nan, 3.0], [2.0, 0.0, -1.0]], m.dtype), 1,
               gradcheck=False),
        Sample("nan_all", np.array([1.0, np.nan, 3.0], m.dtype), gradcheck=False),
        Sample("int_input", m.ints(3, 4), 0),
    ]


def _elementwise_extreme_samples(m: Maker) -> list[Sample]:
    d = lambda *s, **k: m(*s, kind="distinct", **k)  # noqa: E731
    return [
        Sample("same_shape", d(3, 4), d(3, 4)),
        Sample("bcast", d(3, 1), d(4)),
        Sample("0d_and_2x3", d(), d(2, 3)),
        Sample("noncontig", d(4, 3, layout="T"), d(4, 3, layout="step")),
        Sample("empty", d(0, 3), d(3)),
        Sample("ties", np.array([1.0, 2.0, -1.0], m.dtype), np.array([1.0, 0.0, -1.0], m.dtype),
               gradcheck=False),
        Sample("nan", np.array([np.nan, 1.0, np.nan], m.dtype),
               np.array([0.0, np.nan, np.nan], m.dtype), gradcheck=False),
        Sample("int_int", m.ints(2, 3, low=-3), m.ints(2, 3, low=-3)),
        Sample("int_float", m.ints(2, 3, low=-3), Const(d(2, 3))),
        Sample("bool_bool", m.bools(2, 3), m.bools(2, 3)),
        Sample("f32_f64", Const(d(2, 3, dtype=F32)), Const(d(2, 3, dtype=F64))),
    ]


def _arg_samples(m: Maker) -> list[Sample]:
    d = lambda *s, **k: m(*s, kind="distinct", **k)  # noqa: E731
    return [
        Sample("all", d(3, 4)),
        Sample("dim0", d(3, 4), 0),
        Sample("dim1_keepdim", d(3, 4), 1, keepdim=True),
        Sample("all_keepdim", d(2, 3), keepdim=True),
        Sample("0d", d()),
        Sample("noncontig", d(4, 3, layout="T"), 1),
        Sample("nan", np.array([[1.0, np.nan, 3.0], [2.0, 0.0, -1.0]], m.dtype), 1),
        Sample("int_input", m.ints(3, 4), 0),
    ]


def _sort_samples(m: Maker) -> list[Sample]:
    """sort and argsort: distinct values (any sort gives one answer), and ties under
    stable=True, where PyTorch keeps equal elements in order too."""
    d = lambda *s, **k: m(*s, kind="distinct", **k)  # noqa: E731
    ties = np.array([[2.0, 1.0, 2.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]], m.dtype)
    return [
        Sample("default", d(3, 5)),
        Sample("dim0", d(4, 3), 0),
        Sample("descending", d(3, 5), descending=True),
        Sample("dim0_descending", d(4, 3), 0, True),
        Sample("0d", d()),
        Sample("noncontig", d(4, 3, layout="T"), 0),
        Sample("empty", d(0, 3), 1),
        Sample("stable_ties", ties, stable=True, gradcheck=False),
        Sample("stable_ties_descending", ties, stable=True, descending=True, gradcheck=False),
        Sample("nan", np.array([[1.0, np.nan, -1.0, 2.0]], m.dtype), gradcheck=False),
        Sample("nan_descending", np.array([[1.0, np.nan, -1.0, 2.0]], m.dtype),
               descending=True, gradcheck=False),
        Sample("int_input", m.rng.permutation(12).reshape(3, 4), 1),
    ]


def _rows_of(m: Maker, rows: int, n: int, k: int) -> np.ndarray:
    """A (rows, k) int64 index of k distinct positions below n in each row (scatter
    without colliding writes)."""
    return np.argsort(m.rng.random((rows, n)), axis=1)[:, :k].astype(np.int64)


def _dim_error(op: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("dim out of range", m(2, 3), 2, exc=IndexError,
                  match=rf"{op}.*dimension 2 out of range"),
    ]


def _softmax_samples(m: Maker) -> list[Sample]:
    return [
        Sample("dim1", m(3, 5), dim=1),
        Sample("dim0", m(3, 5), dim=0),
        Sample("dim-1_4d", m(2, 3, 2, 4), dim=-1),
        Sample("dim1_4d", m(2, 3, 2, 2), dim=1),
        Sample("0d", m(), dim=0),
        Sample("1d", m(6), dim=0),
        Sample("empty", m(0, 4), dim=1),
        Sample("noncontig", m(4, 3, layout="T"), dim=1),
        Sample("large_values", m(2, 4) * 50, dim=1),
        Sample("dtype_f64", m(2, 3), dim=1, dtype=F64),
        Sample("int_input_dtype_f32", m.ints(2, 3), dim=1, dtype=F32),
        Sample("bool_input_dtype_f64", m.bools(2, 3), dim=0, dtype=F64),
        Sample("implicit_dim_3d", m(2, 3, 4)),
        Sample("implicit_dim_2d", m(2, 3)),
        Sample("neg_inf_masked", np.array([[0.5, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]],
                                          m.dtype), dim=1, gradcheck=False),
    ]


def _where_cond(m: Maker, *shape: int) -> Const:
    return Const(m.bools(*shape))


def _shape_errors(op: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("bad size", m(2, 3), 4, 2, exc=RuntimeError,
                  match=rf"{op}.*\(4, 2\).*\(2, 3\)"),
        ErrorCase("two -1", m(2, 3), -1, -1, exc=RuntimeError, match=rf"{op}.*-1"),
    ]


def _getitem_samples(m: Maker) -> list[Sample]:
    x = m(3, 4, 5)
    return [
        Sample("int", x, 1),
        Sample("negative_int", x, -1),
        Sample("slice", x, slice(1, 3)),
        Sample("step_slice", x, (slice(None), slice(None, None, 2))),
        Sample("ellipsis_int", x, (Ellipsis, 2)),
        Sample("none_newaxis", x, (None, 0)),
        Sample("int_tensor_index", x, Const(np.array([2, 0, 2]))),
        Sample("bool_mask", x, Const(m.bools(3, 4, 5))),
        Sample("mixed", x, (slice(0, 2), 1, slice(None, None, 3))),
        Sample("empty_slice", x, slice(2, 2)),
        Sample("noncontig", m(4, 3, layout="T"), (slice(None), 1)),
        Sample("int_list_2d", x, (Const(np.array([0, 2])), Const(np.array([1, 3])))),
        Sample("repeated_index_accumulates", x, Const(np.array([1, 1, 1]))),
    ]


def _getitem_errors(m: Maker) -> list[ErrorCase]:
    return [
        ErrorCase("index out of range", m(3, 4), 5, exc=IndexError,
                  match=r"index 5 is out of bounds.*size 3"),
        ErrorCase("negative step", m(3, 4), slice(None, None, -1), exc=ValueError,
                  match=r"step"),
        ErrorCase("too many indices", m(3, 4), (0, 0, 0), exc=IndexError, match=r"indices|index"),
        ErrorCase("float index", m(3, 4), 1.5, exc=IndexError, match=r"ind"),
        ErrorCase("mask shape", m(3, 4), Const(np.ones((2, 4), bool)), exc=IndexError,
                  match=r"(mask|index|boolean).*"),
    ]


def _cat_samples(m: Maker) -> list[Sample]:
    return [
        Sample("dim0", [m(2, 3), m(1, 3), m(4, 3)]),
        Sample("dim1", [m(2, 3), m(2, 1)], 1),
        Sample("dim-1_3d", [m(2, 3, 1), m(2, 3, 2)], dim=-1),
        Sample("single", [m(3, 2)]),
        Sample("with_empty", [m(2, 3), m(0, 3)]),
        Sample("noncontig", [m(4, 3, layout="T"), m(2, 3, layout="step")]),
        Sample("f32_f64", [Const(m(2, 3, dtype=F32)), Const(m(1, 3, dtype=F64))]),
        Sample("int_float", [m.ints(2, 3), m(1, 3, dtype=F32)], gradcheck=False),
        Sample("tuple_of_tensors", (m(2, 3), m(2, 3)), 1),
        Sample("legacy_empty_1d", [m(0), m(2, 3)], 1),
    ]


def _stack_samples(m: Maker) -> list[Sample]:
    return [
        Sample("dim0", [m(2, 3), m(2, 3), m(2, 3)]),
        Sample("dim1", [m(2, 3), m(2, 3)], 1),
        Sample("dim-1", [m(2, 3), m(2, 3)], dim=-1),
        Sample("0d", [m(), m()]),
        Sample("noncontig", [m(4, 3, layout="T"), m(4, 3, layout="step")], 2),
        Sample("f32_f64", [Const(m(2, 3, dtype=F32)), Const(m(2, 3, dtype=F64))]),
    ]


# ----------------------------------------------------------------------- the table
def _int_float_samples(m: Maker) -> list[Sample]:
    """Integer and bool inputs of a float function (exp, log, sqrt): PyTorch computes in
    float32, its default float dtype. Drawn in the float32 pass only, whose tolerance
    fits their float32 results."""
    if m.dtype != F32:
        return []
    return [
        Sample("int64", m.ints(2, 3, low=-2)),
        Sample("int32", m.ints(2, 3).astype(np.int32)),
        Sample("uint8", m.ints(2, 3).astype(np.uint8)),
        Sample("bool", m.bools(2, 3)),
        Sample("int_empty", m.ints(0, 3)),
    ]


def _unary(op: str, kind: str = "randn", **kw: Any) -> OpRow:
    return OpRow(op, samples=lambda m: unary_samples(m, kind), **kw)


def _float_input_error(name: str) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [
        ErrorCase("non-tensor input", [1.0, 2.0], exc=TypeError, match=rf"{name}.*list"),
    ]


def _op_errors(*fns: Callable[[Maker], list[ErrorCase]]) -> Callable[[Maker], list[ErrorCase]]:
    return lambda m: [e for fn in fns for e in fn(m)]


OPS: list[OpRow] = [
    # ---- activations (nn.functional)
    _unary("F.relu", errors=_float_input_error("relu")),
    _unary("F.relu6"),
    # PyTorch's own elu/selu gradient at NaN differs between float32 and float64
    # (vectorised blend vs scalar tail), so it is no specification
    _unary("F.selu", no_backward=("nan",)),
    _unary("F.sigmoid"),
    _unary("F.tanh"),
    _unary("F.silu"),
    # PyTorch's hardswish gradient at NaN differs between its vectorised and scalar paths
    _unary("F.hardswish", no_backward=("nan",)),
    OpRow("F.elu", samples=lambda m: unary_samples(m) + [
        Sample("alpha0.5", m(3, 4), alpha=0.5),
        Sample("alpha2", m(3, 4), 2.0),
    ], no_backward=("nan",)),
    OpRow("F.leaky_relu", samples=lambda m: unary_samples(m) + [
        Sample("slope0.2", m(3, 4), 0.2),
        Sample("slope_negative", m(3, 4), negative_slope=-0.5),
        Sample("slope_kw_noncontig", m(4, 3, layout="T"), negative_slope=0.3),
    ]),
    OpRow("F.gelu", torch_op=_torch_gelu_in_float64, samples=lambda m: unary_samples(m) + [
        Sample("tanh_2x3x5", m(2, 3, 5), approximate="tanh"),
        Sample("tanh_0d", m(), approximate="tanh"),
        Sample("tanh_noncontig", m(4, 3, layout="T"), approximate="tanh"),
    ], errors=lambda m: [
        ErrorCase("bad approximate", m(3), approximate="fast", exc=ValueError,
                  match=r"gelu.*fast"),
    ]),
    OpRow("F.hardtanh", samples=lambda m: unary_samples(m) + [
        Sample("min-0.5_max2", m(3, 4), -0.5, 2.0),
        Sample("kw_bounds", m(3, 4), min_val=0.0, max_val=0.5),
        Sample("min_eq_max", m(3, 4), min_val=0.0, max_val=0.0),
    ], errors=lambda m: [
        ErrorCase("min above max", m(3), min_val=1.0, max_val=-1.0, exc=ValueError,
                  match=r"hardtanh.*min_val"),
    ]),
    _unary("F.hardsigmoid"),
    _unary("F.mish"),
    _unary("F.logsigmoid"),
    OpRow("F.softplus", samples=lambda m: unary_samples(m) + [
        Sample("beta2_threshold5", m(3, 4) * 4, 2.0, 5.0),
        Sample("beta0.5_kw", m(3, 4) * 4, beta=0.5, threshold=1.0),
        Sample("large", m(3, 4) * 40),
    ]),
    OpRow("F.threshold", samples=lambda m: [
        Sample("th0.1_val20", m(3, 4), 0.1, 20.0),
        Sample("negative_value", m(2, 3, 4), -0.5, -2.0),
        Sample("int_args", m(3, 4) * 3, 1, 0),
        Sample("0d", m(), 0.0, 1.0),
        Sample("noncontig", m(4, 3, layout="T"), 0.2, 0.0),
        Sample("nan", np.array([np.nan, 1.0, -1.0], m.dtype), 0.0, 5.0, gradcheck=False),
        Sample("int_input", m.ints(3, 4), 2, -1),
    ], errors=lambda m: [
        ErrorCase("list input", [1.0, 2.0], 0.0, 1.0, exc=TypeError, match=r"threshold.*list"),
    ]),
    # PyTorch negates before casting, so a bool input is refused (as kiln refuses it)
    OpRow("F.softmin", samples=lambda m: [s for s in _softmax_samples(m)
                                          if not s.desc.startswith("bool")], errors=lambda m: [
        ErrorCase("dim out of range", m(2, 3), dim=2, exc=IndexError,
                  match=r"soft(min|max): dimension 2 out of range.*\(2, 3\)"),
    ]),
    OpRow("F.softmax", samples=_softmax_samples, errors=lambda m: [
        ErrorCase("int input", m.ints(2, 3), dim=1, exc=(TypeError, RuntimeError),
                  match=r"softmax.*int64"),
        ErrorCase("int dtype", m(2, 3), dim=1, dtype=np.dtype(np.int64),
                  exc=(TypeError, RuntimeError), match=r"softmax.*int64"),
        ErrorCase("dim out of range", m(2, 3), dim=2, exc=IndexError,
                  match=r"softmax: dimension 2 out of range.*\[-2, 1\].*\(2, 3\)"),
        ErrorCase("0d dim 1", m(), dim=1, exc=IndexError,
                  match=r"softmax: dimension 1 out of range.*\[-1, 0\].*\(\)"),
    ]),
    OpRow("F.log_softmax", samples=_softmax_samples, errors=lambda m: [
        ErrorCase("dim out of range", m(2, 3), dim=-3, exc=IndexError,
                  match=r"log_softmax: dimension -3 out of range.*\(2, 3\)"),
    ]),
    OpRow("F.prelu", samples=lambda m: [
        Sample("shared_weight", m(2, 3, 4, 4), m(1)),
        Sample("per_channel", m(2, 3, 4, 4), m(3)),
        Sample("per_channel_2d", m(4, 3), m(3)),
        Sample("1d_input", m(5), m(1)),
        Sample("0d_input", m(), m(1)),
        Sample("batch1_noncontig", m(1, 3, 4, 5, layout="T"), m(3)),
    ], errors=lambda m: [
        ErrorCase("weight size", m(2, 3, 4), m(2), exc=ValueError, match=r"prelu.*\(2,\)"),
    ]),
    # ---- vector functions (normalize, distances, one_hot)
    OpRow("F.normalize", samples=lambda m: [
        Sample("default", m(3, 4)),
        Sample("dim0_p1", m(3, 4), 1.0, 0),
        Sample("p3_dim-1", m(2, 3, 4), p=3.0, dim=-1),
        Sample("pinf", m(3, 5, kind="distinct"), float("inf"), 1),
        Sample("zero_row", Const(np.zeros((2, 3), m.dtype)), dim=1),
        Sample("zero_row_grad", np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], m.dtype),
               gradcheck=False),
        Sample("1d", m(5), dim=0),
        Sample("noncontig", m(4, 3, layout="T")),
    ], errors=lambda m: [
        ErrorCase("dim out of range", m(2, 3), dim=2, exc=IndexError,
                  match=r"normalize.*dimension 2 out of range"),
    ]),
    OpRow("F.cosine_similarity", samples=lambda m: [
        Sample("default", m(4, 5), m(4, 5)),
        Sample("dim0", m(4, 5), m(4, 5), 0),
        Sample("bcast", m(3, 1, 4), m(2, 4), dim=-1),
        Sample("zero_vector", m(2, 3), Const(np.zeros((2, 3), m.dtype)), gradcheck=False),
        Sample("tiny_eps_clamp", m(2, 3) * 1e-10, m(2, 3), eps=1e-8, gradcheck=False),
        Sample("1d", m(5), m(5), dim=0),
    ], errors=lambda m: [
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=ValueError,
                  match=r"cosine_similarity.*\(2, 3\).*\(4, 3\)"),
    ]),
    OpRow("F.pairwise_distance", samples=lambda m: [
        Sample("default", m(4, 5), m(4, 5)),
        Sample("p1_keepdim", m(4, 5), m(4, 5), 1.0, keepdim=True),
        Sample("p3", m(3, 4), m(3, 4), p=3.0),
        Sample("bcast_row", m(4, 5), m(5)),
        Sample("1d", m(5), m(5)),
    ]),
    OpRow("F.one_hot", differentiable=False, samples=lambda m: [
        Sample("infer", m.ints(5, high=4)),
        Sample("num_classes", m.ints(2, 3, high=4), 6),
        Sample("0d", np.array(2, np.int64), 3),
        Sample("empty_given", m.ints(0, high=3), 3),
    ], errors=lambda m: [
        ErrorCase("float input", Const(m(3)), exc=(TypeError, RuntimeError), match=r"one_hot"),
        ErrorCase("too few classes", np.array([0, 3], np.int64), 3,
                  exc=(ValueError, RuntimeError), match=r"one_hot.*smaller than num_classes"),
        ErrorCase("negative", np.array([0, -1], np.int64), exc=(ValueError, RuntimeError),
                  match=r"one_hot.*non-negative"),
        ErrorCase("empty inferred", m.ints(0, high=3), exc=(ValueError, RuntimeError),
                  match=r"one_hot.*empty"),
    ]),
    # ---- conv, linear
    OpRow("F.conv2d", samples=_conv_samples, errors=_conv_errors, tol=LOOSE_TOL),
    OpRow("F.conv1d", samples=lambda m: [
        Sample("basic", m(2, 3, 9), m(4, 3, 3), m(4)),
        Sample("stride2_pad1_nobias", m(2, 3, 10), m(4, 3, 3), None, 2, 1),
        Sample("dilation2_groups", m(1, 4, 11), m(6, 2, 3), m(6), 1, 2, 2, 2),
        Sample("same_even_kernel", m(2, 2, 7), m(3, 2, 4), m(3), padding="same"),
        Sample("same_dilated", m(1, 2, 9), m(2, 2, 3), None, padding="same", dilation=2),
        Sample("valid", m(2, 2, 7), m(3, 2, 3), padding="valid"),
        Sample("tuple_args", m(2, 3, 9), m(4, 3, 3), m(4), (2,), (1,), (1,)),
        Sample("unbatched", m(3, 8), m(2, 3, 3), m(2)),
        Sample("noncontig", m(2, 3, 9, layout="T"), m(4, 3, 3), m(4)),
    ], errors=lambda m: [
        ErrorCase("channel mismatch", m(2, 3, 5), m(4, 2, 3), exc=ValueError,
                  match=r"conv1d.*\(4, 2, 3\).*\(2, 3, 5\)"),
        ErrorCase("4d input", m(2, 3, 4, 5), m(4, 3, 3), exc=ValueError,
                  match=r"conv1d.*\(2, 3, 4, 5\)"),
        ErrorCase("same with stride", m(2, 3, 9), m(4, 3, 3), stride=2, padding="same",
                  exc=ValueError, match=r"conv1d.*same.*stride"),
        ErrorCase("bad padding string", m(2, 3, 9), m(4, 3, 3), padding="full",
                  exc=ValueError, match=r"conv.*full"),
    ], tol=LOOSE_TOL),
    OpRow("F.conv_transpose2d", samples=_conv_t_samples, errors=_conv_t_errors, tol=LOOSE_TOL),
    OpRow("F.linear", samples=lambda m: [
        Sample("2d", m(5, 4), m(3, 4), m(3)),
        Sample("1d_input", m(4), m(3, 4), m(3)),
        Sample("3d_nobias", m(2, 3, 4), m(2, 4)),
        Sample("batch1", m(1, 4), m(3, 4), m(3)),
        Sample("weight_transposed", m(5, 4), m(3, 4, layout="T"), m(3)),
        Sample("input_sliced", m(5, 4, layout="step"), m(3, 4), None),
        Sample("empty_batch", m(0, 4), m(3, 4), m(3)),
        Sample("out_features1", m(3, 4), m(1, 4), m(1)),
    ], errors=lambda m: [
        ErrorCase("feature mismatch", m(2, 3), m(4, 5), exc=ValueError,
                  match=r"linear.*\(2, 3\).*\(4, 5\)"),
        ErrorCase("bias size", m(2, 3), m(4, 3), m(5), exc=ValueError,
                  match=r"linear.*bias.*\(5,\)"),
    ], tol=LOOSE_TOL),
    OpRow("F.matmul", torch_op="torch.matmul", samples=_matmul_samples,
          errors=_matmul_errors("matmul"), tol=LOOSE_TOL),
    OpRow("kiln.matmul", samples=_matmul_samples, errors=_matmul_errors("matmul"),
          tol=LOOSE_TOL),
    OpRow(operator.matmul, name="Tensor.__matmul__", samples=_matmul_samples,
          errors=_matmul_errors("matmul"), tol=LOOSE_TOL),
    # ---- pools
    OpRow("F.max_pool2d", samples=_max_pool_samples, errors=lambda m: [
        ErrorCase("output empty", m(2, 3, 5, 5), 7, exc=ValueError,
                  match=r"max_pool2d.*\(2, 3, 5, 5\).*too small"),
        ErrorCase("padding over half kernel", m(1, 1, 5, 5), 2, 1, 2, exc=ValueError,
                  match=r"max_pool2d.*padding"),
        ErrorCase("2d input", m(5, 5), 2, exc=ValueError, match=r"max_pool2d.*\(5, 5\)"),
        ErrorCase("kernel 0", m(1, 1, 5, 5), 0, exc=ValueError, match=r"max_pool2d.*kernel"),
        ErrorCase("stride 0", m(1, 1, 5, 5), 2, 0, exc=ValueError, match=r"max_pool2d.*stride"),
        ErrorCase("negative padding", m(1, 1, 5, 5), 2, 1, -1, exc=ValueError,
                  match=r"max_pool2d.*padding"),
    ]),
    OpRow("F.avg_pool2d", samples=_avg_pool_samples, errors=lambda m: [
        ErrorCase("output empty", m(1, 1, 3, 3), 4, exc=ValueError,
                  match=r"avg_pool2d.*\(1, 1, 3, 3\)"),
        ErrorCase("divisor zero", m(1, 1, 4, 4), 2, divisor_override=0, exc=ValueError,
                  match=r"avg_pool2d.*divisor"),
    ]),
    OpRow("F.adaptive_avg_pool2d", samples=lambda m: _adaptive_samples(m, False),
          errors=lambda m: [
              ErrorCase("2d input", m(4, 4), 2, exc=ValueError,
                        match=r"adaptive_avg_pool2d.*\(4, 4\)"),
          ]),
    OpRow("F.adaptive_max_pool2d", samples=lambda m: _adaptive_samples(m, True),
          errors=lambda m: [
              ErrorCase("bad output size", m(1, 2, 4, 4), (1, 2, 3), exc=(ValueError, TypeError),
                        match=r"adaptive_max_pool2d.*output_size"),
          ]),
    OpRow("F.fractional_max_pool2d", samples=_fractional_samples, errors=_fractional_errors),
    OpRow("F.max_pool1d", samples=lambda m: [
        Sample("k3", m(2, 3, 9, kind="distinct"), 3),
        Sample("k3_s2_p1", m(2, 3, 10, kind="distinct"), 3, 2, 1),
        Sample("dilation2_ceil", m(1, 2, 11, kind="distinct"), 3, 2, 1, 2, True),
        Sample("tuple_args", m(2, 2, 8, kind="distinct"), (2,), (2,), (1,)),
        Sample("unbatched", m(3, 8, kind="distinct"), 2),
        Sample("indices", m(2, 3, 9, kind="distinct"), 3, 2, 1, return_indices=True),
        Sample("noncontig", m(2, 3, 8, kind="distinct", layout="step"), 2),
    ], errors=lambda m: [
        ErrorCase("4d input", m(2, 3, 4, 5), 2, exc=ValueError,
                  match=r"max_pool1d.*\(2, 3, 4, 5\)"),
        ErrorCase("pair kernel", m(2, 3, 8), (2, 2), exc=(TypeError, ValueError),
                  match=r"max_pool1d.*kernel_size"),
    ]),
    OpRow("F.avg_pool1d", samples=lambda m: [
        Sample("k3", m(2, 3, 9), 3),
        Sample("k3_s2_p1", m(2, 3, 10), 3, 2, 1),
        Sample("no_pad_count_ceil", m(1, 2, 11), 3, 2, 1, True, False),
        Sample("unbatched", m(3, 8), (2,)),
        Sample("noncontig", m(2, 3, 8, layout="T"), 2),
    ], errors=lambda m: [
        ErrorCase("1d input", m(8), 2, exc=ValueError, match=r"avg_pool1d.*\(8,\)"),
    ]),
    OpRow("F.adaptive_avg_pool1d", samples=lambda m: [
        Sample("7_to_3", m(2, 3, 7), 3),
        Sample("global", m(2, 3, 5), 1),
        Sample("upsample", m(1, 2, 3), (5,)),
        Sample("unbatched", m(3, 8), 4),
    ], errors=lambda m: [
        ErrorCase("4d input", m(1, 2, 4, 4), 2, exc=ValueError,
                  match=r"adaptive_avg_pool1d.*\(1, 2, 4, 4\)"),
    ]),
    OpRow("F.adaptive_max_pool1d", samples=lambda m: [
        Sample("7_to_3", m(2, 3, 7, kind="distinct"), 3),
        Sample("indices", m(2, 3, 8, kind="distinct"), 3, True),
        Sample("unbatched", m(3, 8, kind="distinct"), 4),
    ]),
    OpRow("F.unfold", samples=lambda m: [
        Sample("k2", m(2, 3, 4, 5), 2),
        Sample("k2x3_all_args", m(2, 3, 6, 7), (2, 3), 2, 1, (2, 1)),
        Sample("unbatched", m(3, 4, 4), 3, padding=1),
        Sample("noncontig", m(1, 2, 5, 4, layout="T"), 2, stride=2),
    ], errors=lambda m: [
        ErrorCase("2d input", m(4, 4), 2, exc=ValueError, match=r"unfold.*\(4, 4\)"),
        ErrorCase("kernel too large", m(1, 1, 3, 3), 4, exc=(ValueError, RuntimeError),
                  match=r"unfold"),
    ], tol=LOOSE_TOL),
    OpRow("F.fold", samples=lambda m: [
        Sample("k2", m(2, 12, 12), (4, 5), 2),
        Sample("k2_stride2", m(2, 8, 4), 4, 2, stride=2),
        Sample("all_args", m(1, 12, 9), (5, 6), (2, 3), 1, 1, 2),
        Sample("unbatched", m(18, 4), 3, 3, padding=1, stride=2),
    ], errors=lambda m: [
        ErrorCase("block count", m(1, 12, 10), (4, 5), 2, exc=(ValueError, RuntimeError),
                  match=r"fold.*\(1, 12, 10\)"),
        ErrorCase("channels", m(1, 10, 12), (4, 5), 2, exc=(ValueError, RuntimeError),
                  match=r"fold.*\(1, 10, 12\)"),
    ], tol=LOOSE_TOL),
    # ---- resampling
    OpRow("F.interpolate", samples=lambda m: [
        Sample("nearest_x2", m(2, 3, 4, 5), scale_factor=2),
        Sample("nearest_size", m(2, 3, 4, 5), size=(7, 3)),
        Sample("nearest_scale1.7", m(1, 2, 5, 4), scale_factor=1.7),
        Sample("nearest_exact", m(1, 2, 5, 4), size=(8, 7), mode="nearest-exact"),
        Sample("bilinear_x2", m(2, 3, 4, 5), scale_factor=2, mode="bilinear"),
        Sample("bilinear_size_down", m(2, 3, 7, 9), size=(4, 5), mode="bilinear"),
        Sample("bilinear_align", m(1, 2, 4, 5), size=(7, 9), mode="bilinear",
               align_corners=True),
        Sample("bilinear_scale_pair", m(1, 2, 5, 6), scale_factor=(1.5, 0.7), mode="bilinear"),
        Sample("bilinear_recompute", m(1, 2, 5, 6), scale_factor=1.7, mode="bilinear",
               recompute_scale_factor=True),
        Sample("linear_3d", m(2, 3, 6), scale_factor=2.5, mode="linear"),
        Sample("nearest_3d", m(2, 3, 6), size=10),
        Sample("area", m(2, 3, 7, 9), size=(3, 4), mode="area"),
        Sample("noncontig", m(2, 3, 4, 5, layout="T"), scale_factor=2, mode="bilinear"),
        Sample("bicubic_x2", m(2, 3, 4, 5), scale_factor=2, mode="bicubic"),
        Sample("bicubic_size_down", m(1, 2, 7, 9), size=(4, 5), mode="bicubic"),
        Sample("bicubic_align", m(1, 2, 4, 5), size=(7, 9), mode="bicubic",
               align_corners=True),
        Sample("bicubic_scale_pair", m(1, 2, 5, 6), scale_factor=(1.5, 0.7), mode="bicubic"),
        Sample("bicubic_1px", m(1, 1, 1, 3), size=(3, 2), mode="bicubic"),
        Sample("bilinear_antialias_down", m(2, 3, 9, 11), size=(4, 3), mode="bilinear",
               antialias=True),
        Sample("bicubic_antialias_down", m(1, 2, 9, 11), size=(4, 3), mode="bicubic",
               antialias=True),
        Sample("antialias_up", m(1, 2, 3, 4), size=(7, 6), mode="bicubic", antialias=True),
        Sample("antialias_align", m(1, 2, 8, 9), size=(3, 5), mode="bilinear",
               align_corners=True, antialias=True),
        Sample("antialias_scale", m(1, 2, 10, 7), scale_factor=0.3, mode="bicubic",
               antialias=True),
    ], errors=lambda m: [
        ErrorCase("antialias with nearest", m(1, 2, 4, 4), size=2, antialias=True,
                  exc=ValueError, match=r"interpolate: Anti-alias option is restricted"),
        ErrorCase("bicubic on 3-d", m(1, 2, 4), size=2, mode="bicubic",
                  exc=NotImplementedError, match=r"bicubic"),
        ErrorCase("neither size nor scale", m(1, 2, 3, 3), exc=ValueError,
                  match=r"either size or scale_factor"),
        ErrorCase("both", m(1, 2, 3, 3), size=4, scale_factor=2, exc=ValueError,
                  match=r"only one of size or scale_factor"),
        ErrorCase("align_corners with nearest", m(1, 2, 3, 3), size=4, align_corners=True,
                  exc=ValueError, match=r"align_corners"),
        ErrorCase("size rank", m(1, 2, 3, 3), size=(4,), exc=ValueError,
                  match=r"same number of spatial dimensions"),
        ErrorCase("linear on 4-d", m(1, 2, 3, 3), size=4, mode="linear",
                  exc=NotImplementedError, match=r"linear"),
    ]),
    OpRow("F.pixel_shuffle", samples=lambda m: [
        Sample("r2", m(2, 8, 3, 4), 2),
        Sample("r3_unbatched", m(9, 2, 2), 3),
        Sample("5d", m(2, 1, 4, 2, 3), 2),
    ], errors=lambda m: [
        ErrorCase("channels", m(1, 3, 2, 2), 2, exc=(ValueError, RuntimeError),
                  match=r"pixel_shuffle.*divisible"),
    ]),
    OpRow("F.pixel_unshuffle", samples=lambda m: [
        Sample("r2", m(2, 2, 4, 6), 2),
        Sample("r3_unbatched", m(1, 6, 3), 3),
    ], errors=lambda m: [
        ErrorCase("size", m(1, 2, 3, 4), 2, exc=(ValueError, RuntimeError),
                  match=r"pixel_unshuffle.*divisible"),
    ]),
    # ---- normalization, dropout
    OpRow("F.layer_norm", samples=_layer_norm_samples, errors=_layer_norm_errors,
          tol=LOOSE_TOL),
    OpRow("F.instance_norm", samples=_instance_norm_samples, errors=_instance_norm_errors,
          tol=LOOSE_TOL),
    OpRow("F.local_response_norm", samples=_local_response_norm_samples,
          errors=_local_response_norm_errors),
    OpRow("F.batch_norm", samples=_batch_norm_samples, errors=_batch_norm_errors, tol=LOOSE_TOL),
    OpRow("F.batch_norm_relu", torch_op=_torch_batch_norm_relu, samples=_batch_norm_relu_samples,
          errors=_batch_norm_relu_errors, tol=LOOSE_TOL),
    OpRow("F.group_norm", samples=lambda m: [
        Sample("4d_2groups", m(2, 4, 3, 3), 2, m(4), m(4)),
        Sample("4d_groups_eq_channels", m(2, 3, 2, 2), 3, m(3), m(3)),
        Sample("one_group_no_affine", m(3, 4, 2, 2), 1),
        Sample("2d", m(4, 6), 3, m(6), m(6), eps=1e-3),
        Sample("3d_batch1", m(1, 4, 5), 2, m(4), m(4)),
        Sample("5d", m(2, 2, 2, 3, 2), 2, m(2), m(2)),
        Sample("noncontig", m(2, 4, 3, 5, layout="T"), 4, m(4), m(4)),
    ], errors=lambda m: [
        ErrorCase("channels not divisible", m(2, 6, 3, 3), 4, exc=ValueError,
                  match=r"group_norm.*6.*4"),
        ErrorCase("weight size", m(2, 4, 3, 3), 2, m(3), exc=ValueError,
                  match=r"group_norm.*weight"),
    ], tol=LOOSE_TOL),
    OpRow("F.dropout", samples=lambda m: [
        Sample("p0_train", m(3, 4), 0.0),
        Sample("eval_p0.5", m(3, 4), 0.5, training=False),
        Sample("p1_train", m(3, 4), p=1.0),
        Sample("p0_0d", m(), 0.0),
        Sample("eval_noncontig", m(4, 3, layout="T"), 0.3, False),
    ], errors=lambda m: [
        ErrorCase("p above 1", m(3), 1.5, exc=ValueError, match=r"dropout.*1\.5"),
    ]),
    OpRow("F.dropout2d", samples=lambda m: [
        Sample("p0_train", m(2, 3, 4, 4), 0.0),
        Sample("eval", m(2, 3, 4, 4), 0.5, training=False),
        Sample("p1_train", m(2, 3, 4, 4), 1.0),
        Sample("unbatched_eval", m(3, 4, 4), 0.2, training=False),
    ], errors=lambda m: [
        ErrorCase("p negative", m(1, 2, 3, 3), -0.1, exc=ValueError, match=r"dropout.*-0\.1"),
    ]),
    OpRow("F.dropout1d", samples=lambda m: [
        Sample("p0_train", m(2, 3, 5), 0.0),
        Sample("eval", m(2, 3, 5), 0.5, training=False),
        Sample("p1_train", m(2, 3, 5), 1.0),
        Sample("unbatched_p1", m(3, 5), 1.0),
    ], errors=lambda m: [
        ErrorCase("4d input", m(1, 2, 3, 3), 0.5, exc=ValueError,
                  match=r"dropout1d.*\(1, 2, 3, 3\)"),
    ]),
    OpRow("F.alpha_dropout", samples=lambda m: [
        Sample("default_not_training", m(3, 4), 0.5),
        Sample("p0_train", m(3, 4), 0.0, True),
        Sample("p1_train", m(3, 4), 1.0, True),
    ], errors=lambda m: [
        ErrorCase("p above 1", m(3), 1.5, True, exc=ValueError, match=r"dropout.*1\.5"),
    ]),
    # ---- losses
    OpRow("F.cross_entropy", samples=lambda m: _class_loss_samples(m, nll=False),
          errors=lambda m: _class_loss_errors("cross_entropy")(m) + [
              ErrorCase("label_smoothing above 1", m(2, 3), Const(np.array([0, 1])),
                        label_smoothing=1.5, exc=ValueError,
                        match=r"cross_entropy.*label_smoothing.*1\.5"),
              # a float target of another shape is read as class indices, as PyTorch does
              ErrorCase("float target of another shape", m(2, 3), Const(m(2, 4, kind="unit")),
                        exc=(TypeError, ValueError), match=r"cross_entropy.*\(2, 4\)"),
          ], tol=LOOSE_TOL),
    OpRow("F.nll_loss", samples=lambda m: _class_loss_samples(m, nll=True),
          errors=_class_loss_errors("nll_loss"), tol=LOOSE_TOL),
    OpRow("F.mse_loss", samples=_loss_regression, errors=_regression_errors("mse_loss")),
    OpRow("F.l1_loss", samples=_loss_regression, errors=_regression_errors("l1_loss")),
    OpRow("F.binary_cross_entropy_with_logits", samples=lambda m: [
        Sample(red, m(3, 4), m(3, 4, kind="unit"), reduction=red) for red in ("mean", "sum", "none")
    ] + [
        Sample("weight", m(3, 4), Const(m(3, 4, kind="unit")), m.const(4, kind="pos")),
        Sample("pos_weight", m(3, 4), Const(m(3, 4, kind="unit")),
               pos_weight=m.const(4, kind="pos")),
        Sample("weight_pos_weight_none", m(2, 3), m(2, 3, kind="unit"),
               weight=m.const(2, 1, kind="pos"), pos_weight=m.const(3, kind="pos"),
               reduction="none"),
        Sample("large_logits", m(2, 3) * 40, Const(m(2, 3, kind="unit"))),
        Sample("0d", m(), m(kind="unit")),
        Sample("noncontig", m(4, 3, layout="T"), Const(m(4, 3, kind="unit"))),
    ], errors=lambda m: [
        ErrorCase("shape mismatch", m(2, 3), m(3, 2), exc=ValueError,
                  match=r"binary_cross_entropy_with_logits.*\(3, 2\).*\(2, 3\)|"
                        r"binary_cross_entropy_with_logits.*\(2, 3\).*\(3, 2\)"),
    ], tol=LOOSE_TOL),
    OpRow("F.multi_margin_loss", samples=lambda m: [
        Sample(red, m(4, 5), m.labels(4, classes=5), reduction=red)
        for red in ("mean", "sum", "none")
    ] + [
        Sample("p2_margin0.5", m(3, 4), m.labels(3, classes=4), p=2, margin=0.5),
        Sample("weight", m(3, 4), m.labels(3, classes=4), weight=m.const(4, kind="pos")),
        Sample("unbatched", m(5), Const(np.array(2))),
        Sample("0d_input_0d_target", m(), Const(np.array(0))),
        Sample("0d_input_1_target_none", m(), Const(np.array([0])), reduction="none"),
        Sample("batch1_noncontig", m(1, 4, layout="step"), m.labels(1, classes=4)),
    ], errors=lambda m: [
        ErrorCase("p=3", m(2, 3), Const(np.array([0, 1])), p=3, exc=ValueError,
                  match=r"multi_margin_loss.*p"),
        ErrorCase("0d input, class 1", m(), Const(np.array(1)), exc=ValueError,
                  match=r"multi_margin_loss.*1.*out of range for 1 classes"),
    ], tol=LOOSE_TOL),
    OpRow("F.smooth_l1_loss", samples=lambda m: _loss_regression(m)[:5] + [
        Sample("beta0.3", m(3, 4), m(3, 4), beta=0.3),
        Sample("beta0_is_l1", m(3, 4), m(3, 4), beta=0.0),
        Sample("beta2_sum", m(3, 4) * 3, m(3, 4), reduction="sum", beta=2.0),
        Sample("bcast_target", m(3, 4), m(4)),
        Sample("legacy_reduce_False", m(3, 4), m(3, 4), reduce=False),
    ], errors=lambda m: _regression_errors("smooth_l1_loss")(m)[:2] + [
        ErrorCase("negative beta", m(2, 3), m(2, 3), beta=-1.0, exc=ValueError,
                  match=r"smooth_l1_loss.*beta"),
    ]),
    OpRow("F.huber_loss", samples=lambda m: _loss_regression(m)[:5] + [
        Sample("delta0.3", m(3, 4), m(3, 4), delta=0.3),
        Sample("delta2_none", m(3, 4) * 3, m(3, 4), reduction="none", delta=2.0),
        Sample("weight_mean", m(3, 4) * 2, m(3, 4), weight=m.const(3, 4, kind="pos")),
        Sample("weight_sum", m(3, 4) * 2, m(3, 4), reduction="sum",
               weight=m.const(3, 4, kind="pos")),
        Sample("weight_none", m(3, 4) * 2, m(3, 4), reduction="none",
               weight=m.const(3, 4, kind="pos")),
    ], errors=lambda m: _regression_errors("huber_loss")(m)[:2] + [
        ErrorCase("delta 0", m(2, 3), m(2, 3), delta=0.0, exc=ValueError,
                  match=r"huber_loss.*delta"),
    ]),
    OpRow("F.binary_cross_entropy", samples=lambda m: [
        Sample(red, m(3, 4, kind="unit"), m(3, 4, kind="unit"), reduction=red)
        for red in ("mean", "sum", "none")
    ] + [
        Sample("weight_bcast", m(3, 4, kind="unit"), Const(m(3, 4, kind="unit")),
               m.const(4, kind="pos")),
        Sample("weight_full_none", m(2, 3, kind="unit"), m(2, 3, kind="unit"),
               m.const(2, 3, kind="pos"), reduction="none"),
        Sample("hard_targets", m(2, 5, kind="unit"), Const(m.ints(2, 5, high=2).astype(m.dtype))),
        # probabilities of exactly 0 and 1: each log clamped at -100, a finite loss
        Sample("saturated", Const(np.array([0.0, 1.0, 0.0, 1.0], m.dtype)),
               Const(np.array([1.0, 0.0, 0.0, 1.0], m.dtype)), reduction="none"),
        Sample("0d", m(kind="unit"), m(kind="unit")),
        Sample("noncontig", m(4, 3, kind="unit", layout="T"), Const(m(4, 3, kind="unit"))),
        Sample("legacy_size_average_False", m(3, 4, kind="unit"), m(3, 4, kind="unit"),
               size_average=False),
    ], errors=lambda m: [
        ErrorCase("above 1", m(2, 3, kind="unit") + 1, m(2, 3, kind="unit"), exc=ValueError,
                  match=r"binary_cross_entropy.*between 0 and 1"),
        ErrorCase("shape mismatch", m(2, 3, kind="unit"), m(3, 2, kind="unit"), exc=ValueError,
                  match=r"binary_cross_entropy.*\(3, 2\).*\(2, 3\)"),
        ErrorCase("bad reduction", m(2, 3, kind="unit"), m(2, 3, kind="unit"), reduction="avg",
                  exc=ValueError, match=r"binary_cross_entropy.*avg"),
    ]),
    OpRow("F.kl_div", samples=lambda m: [
        Sample(red, m(3, 4), m(3, 4, kind="unit"), reduction=red)
        for red in ("mean", "sum", "none", "batchmean")
    ] + [
        Sample("log_target", m(3, 4), m(3, 4), reduction="batchmean", log_target=True),
        Sample("log_target_none", m(2, 3), m(2, 3), reduction="none", log_target=True),
        Sample("zero_target", m(2, 3), Const(np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]],
                                                      m.dtype)), reduction="sum"),
        Sample("bcast_target", m(3, 4), Const(m(4, kind="unit")), reduction="sum"),
        Sample("0d_batchmean", m(), m(kind="unit"), reduction="batchmean"),
        Sample("noncontig", m(4, 3, layout="T"), m(4, 3, kind="unit"), reduction="batchmean"),
        Sample("legacy_reduce_False", m(3, 4), m(3, 4, kind="unit"), reduce=False),
    ], errors=lambda m: [
        ErrorCase("bad reduction", m(2, 3), m(2, 3), reduction="avg", exc=ValueError,
                  match=r"kl_div.*avg"),
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=ValueError,
                  match=r"kl_div.*\(2, 3\).*\(4, 3\)"),
    ]),
    # ---- pad
    OpRow("F.pad", samples=_pad_samples, errors=_pad_errors),
    # ---- elementwise arithmetic (Tensor operators)
    OpRow(operator.add, name="add", samples=lambda m: binary_samples(m) + promotion_samples(m),
          errors=_binary_errors("add", "+")),
    OpRow(operator.sub, name="sub",
          samples=lambda m: [s for s in binary_samples(m) if s.desc != "bool_scalar"]
          + promotion_samples(m, bool_ok=False),
          errors=lambda m: _binary_errors("sub", "-")(m) + [
              ErrorCase("bool minus int tensor", m.bools(3), m.ints(3),
                        exc=(TypeError, RuntimeError),
                        match=r"sub.*bool"),
              ErrorCase("float minus bool scalar", m(3), True, exc=(TypeError, RuntimeError),
                        match=r"sub.*bool"),
              ErrorCase("bool minus bool", m.bools(3), m.bools(3), exc=(TypeError, RuntimeError),
                        match=r"sub.*bool"),
          ]),
    OpRow(operator.mul, name="mul", samples=lambda m: binary_samples(m) + promotion_samples(m),
          errors=_binary_errors("mul", "*")),
    OpRow(operator.truediv, name="truediv",
          samples=lambda m: binary_samples(m, kind="pos") + promotion_samples(m, nonzero=True) + [
              Sample("by_zero", m(3), np.array([0.0, -0.0, 1.0], m.dtype), gradcheck=False),
              Sample("int_by_int_zero", m.ints(3, low=-2, high=3), Const(np.array([0, 0, 2]))),
          ],
          errors=_binary_errors("truediv", "/")),
    OpRow(operator.pow, name="pow_tensor_tensor",
          samples=lambda m: binary_samples(m, kind="pos", scalars=False) + _int_pow_samples(m),
          errors=lambda m: [
              ErrorCase("bool to bool power", m.bools(3), m.bools(3),
                        exc=(TypeError, NotImplementedError), match=r"pow.*bool"),
              ErrorCase("unbroadcastable ints", m.ints(2), m.ints(3), exc=ValueError,
                        match=r"pow.*\(2,\).*\(3,\)"),
          ]),
    OpRow(operator.pow, name="pow_scalar", samples=lambda m: [
        Sample("square", m(3, 4), 2),
        Sample("cube_int", m(3, 4), 3),
        Sample("sqrt_float", m(3, 4, kind="pos"), 0.5),
        Sample("reciprocal", m(3, 4, kind="pos"), -1),
        Sample("zero", m(3, 4), 0),
        Sample("scalar_base", 2.0, m(3, 4)),
        Sample("int_scalar_base", 3, m(2, 3)),
        Sample("0d", m(kind="pos"), 1.5),
        Sample("noncontig", m(4, 3, layout="T"), 2),
        Sample("int_tensor_int", m.ints(2, 3), 2),
        Sample("int_tensor_float", m.ints(2, 3, low=1), 0.5),
        Sample("negative_base_float_exp", np.array([-1.5, 2.0, -0.5], m.dtype), 0.5,
               gradcheck=False),
        Sample("zero_base_negative_exp", np.array([0.0, 2.0], m.dtype), -1, gradcheck=False),
        Sample("zero_base_zero_exp", np.array([0.0, 2.0], m.dtype), 0, gradcheck=False),
        Sample("int_tensor_0", m.ints(2, 3, low=-2), 0),
        Sample("int_tensor_negative_float", m.ints(2, 3, low=1), -1.0),
        Sample("int_tensor_True", m.ints(2, 3, low=-2), True),
        Sample("bool_tensor_int", m.bools(2, 3), 2),
        Sample("bool_tensor_float", m.bools(2, 3), 0.5),
        Sample("bool_tensor_True", m.bools(2, 3), True),
        Sample("bool_tensor_False", m.bools(2, 3), False),
        Sample("uint8_tensor_int", np.array([0, 3, 255], np.uint8), 2),
        # a scalar base with a tensor exponent: negative integer powers give values
        Sample("int_scalar_base_negative_exps", 2, np.array([-2, -1, 0, 3])),
        Sample("minus_one_base_negative_exps", -1, np.array([-3, -2, -1, 0])),
    ], errors=lambda m: [
        ErrorCase("int to negative int power", m.ints(3, low=1), -1, exc=(ValueError, RuntimeError),
                  match=r"(pow|\*\*).*negative"),
        ErrorCase("0d int to negative int power", np.array(2), -2, exc=(ValueError, RuntimeError),
                  match=r"pow.*negative.*int64.*\(\)"),
        ErrorCase("empty int to negative int power", m.ints(0), -1,
                  exc=(ValueError, RuntimeError), match=r"pow.*negative.*\(0,\)"),
        ErrorCase("uint8 to negative int power", np.array([2, 1], np.uint8), -1,
                  exc=(ValueError, RuntimeError), match=r"pow.*negative.*uint8"),
        ErrorCase("bool to negative int power", m.bools(3), -1,
                  exc=(ValueError, RuntimeError), match=r"pow.*negative.*bool"),
        ErrorCase("bool scalar to bool power", True, m.bools(3),
                  exc=(TypeError, NotImplementedError), match=r"pow.*bool"),
    ]),
    OpRow(".pow", samples=lambda m: [
        Sample("scalar", m(3, 4), 2),
        Sample("tensor_exponent", m(3, 4, kind="pos"), m(4)),
    ]),
    OpRow(operator.neg, name="neg", samples=unary_samples),
    OpRow(operator.pos, name="pos", samples=unary_samples),
    # ---- comparisons
    *[OpRow(fn, name=name, differentiable=False,
            samples=lambda m: binary_samples(m) + promotion_samples(m) + [
                Sample("equal_values", Const(np.array([1.0, 2.0, 3.0], m.dtype)),
                       Const(np.array([1.0, 0.0, 3.0], m.dtype))),
                Sample("nan_inf", Const(np.array([np.nan, np.inf, -np.inf, np.nan], m.dtype)),
                       Const(np.array([np.nan, np.inf, 1.0, 0.0], m.dtype))),
            ])
      for fn, name in ((operator.eq, "eq"), (operator.ne, "ne"), (operator.lt, "lt"),
                       (operator.le, "le"), (operator.gt, "gt"), (operator.ge, "ge"))],
    *[OpRow(f".{name}", differentiable=False, samples=lambda m: [
        Sample("same_3x4", m(3, 4), m(3, 4)),
        Sample("bcast", m(3, 1), m(4)),
        Sample("float_scalar", m(2, 3), 0.25),
        Sample("int_float", m.ints(2, 3), Const(m(2, 3))),
        Sample("0d", m(), m(2, 3)),
        Sample("nan_inf", Const(np.array([np.nan, np.inf, 1.0], m.dtype)),
               Const(np.array([np.nan, np.inf, -np.inf], m.dtype))),
    ], errors=lambda m, name=name: [
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=ValueError,
                  match=rf"{name}.*\(2, ?3\).*\(4, ?3\)"),
    ]) for name in ("eq", "ne", "lt", "le", "gt", "ge")],
    *[OpRow(f".{name}", differentiable=False, samples=lambda m: [
        Sample("special_values", special_values(m)),
        Sample("nan", np.array([[np.nan, 0.5], [-np.inf, 2.0]], m.dtype)),
        Sample("int", m.ints(2, 3)),
        Sample("0d", m()),
    ]) for name in ("isnan", "isinf", "isfinite")],
    *[OpRow(f".{name}", differentiable=False, samples=lambda m: [
        Sample("float", m(3, 4)),
        Sample("zeros_dim1", np.array([[0.0, 1.0], [2.0, 3.0]], m.dtype), 1),
        Sample("bool_keepdim", m.bools(3, 4), 0, keepdim=True),
        Sample("int_dims_tuple", m.ints(2, 3, 4, high=2), (0, 2)),
        Sample("uint8", m.ints(3, 4, high=2).astype(np.uint8)),
        Sample("uint8_dim", m.ints(3, 4, high=2).astype(np.uint8), 1),
        Sample("nan", np.array([np.nan, 0.0], m.dtype)),
        Sample("0d", m()),
        Sample("0d_dim0", np.array(True), 0),
        Sample("empty", m(0, 3)),
        Sample("empty_dim0", m(0, 3), 0),
        Sample("kw_dim_neg", m.bools(2, 3), dim=-1),
    ], errors=_dim_error(name)) for name in ("all", "any")],
    # ---- unary math (Tensor methods)
    *[OpRow(op, samples=lambda m, kind=kind: unary_samples(m, kind) + _int_float_samples(m))
      for op, kind in ((".exp", "randn"), (".log", "pos"), (".sqrt", "pos"))],
    _unary(".abs"),
    _unary(".neg"),
    OpRow(".square", samples=lambda m: unary_samples(m) + [
        Sample("int", m.ints(2, 3, low=-3)), Sample("bool", m.bools(2, 3)),
    ]),
    *[OpRow(f".{name}", samples=lambda m, name=name: unary_samples(m) + [
        Sample("halves", np.array([0.5, 1.5, 2.5, -0.5, -1.5], m.dtype), gradcheck=False),
        Sample("int", m.ints(2, 3, low=-3)),
    ] + ([Sample("bool", m.bools(2, 3))] if name == "sign" else []))
      for name in ("sign", "floor", "ceil", "round")],
    OpRow(".round", name=".round(decimals)", samples=lambda m: [
        Sample("decimals2", m(3, 4) * 10, decimals=2),
        Sample("decimals-1", m(3, 4) * 100, decimals=-1),
    ]),
    OpRow(".relu", samples=lambda m: unary_samples(m) + [
        Sample("int64", m.ints(2, 3, low=-3)), Sample("uint8", m.ints(2, 3).astype(np.uint8)),
    ]),
    OpRow(".sigmoid", samples=lambda m: unary_samples(m) + _int_float_samples(m)),
    OpRow(".tanh", samples=lambda m: unary_samples(m) + _int_float_samples(m)),
    OpRow(".softmax", samples=lambda m: [
        Sample("dim1", m(3, 4), 1), Sample("dim0", m(3, 4), 0),
        Sample("dtype_f64", m(3, 4), 1, dtype=F64),
        Sample("int_input_dtype_f64", m.ints(3, 4), 1, dtype=F64),
    ], errors=lambda m: [
        ErrorCase("dim out of range", m(3, 4), 2, exc=IndexError,
                  match=r"softmax: dimension 2 out of range.*\(3, 4\)"),
    ]),
    OpRow(".log_softmax", samples=lambda m: [
        Sample("dim-1", m(2, 3, 4), -1),
        Sample("dtype_f64", m(3, 4), 1, dtype=F64),
    ]),
    OpRow(".clamp", samples=lambda m: [
        Sample("min_max", m(3, 4), -0.5, 0.5),
        Sample("min_only", m(3, 4), min=0.1),
        Sample("max_only", m(3, 4), max=-0.1),
        Sample("int_bounds", m(3, 4) * 3, -1, 1),
        Sample("min_above_max", m(3, 4), 0.5, -0.5, gradcheck=False),
        Sample("0d", m(), -0.2, 0.2),
        Sample("noncontig", m(4, 3, layout="T"), -0.5, 0.5),
        Sample("int_tensor", m.ints(3, 4, low=-5), -2, 2),
        Sample("nan", np.array([np.nan, 1.0, -1.0], m.dtype), -0.5, 0.5, gradcheck=False),
        Sample("at_bounds", np.array([-0.5, 0.5, 0.0], m.dtype), -0.5, 0.5, gradcheck=False),
        Sample("tensor_bounds", m(3, 4), Const(-m(4, kind="pos")), Const(m(3, 1, kind="pos"))),
        Sample("tensor_bounds_grad", m(3, 4), -m(4, kind="pos") * 0.5, m(3, 1, kind="pos") * 0.5),
        Sample("int_tensor_float_bounds", m.ints(3, 4, low=-5), -1.5, 2.5),
    ], errors=lambda m: [
        ErrorCase("no bounds", m(3), exc=(ValueError, RuntimeError), match=r"clamp"),
    ]),
    OpRow(".clip", samples=lambda m: [Sample("min_max", m(3, 4), -0.5, 0.5)]),
    # ---- in-place methods and conversions (forward only: PyTorch forbids in-place ops on
    # leaves that require grad); the result is the mutated first argument
    OpRow(".add_", differentiable=False, samples=lambda m: [
        Sample("tensor", m(3, 4), m(3, 4)),
        Sample("bcast_alpha", m(3, 4), m(4), alpha=2.5),
        Sample("scalar", m(3, 4), 1.5),
        Sample("int_tensor_int_scalar", m.ints(3), 2),
        Sample("float_tensor_int_tensor", m(3), m.ints(3)),
        Sample("noncontig_self", m(4, 3, layout="T"), m(4, 3)),
    ], errors=lambda m: [
        ErrorCase("int tensor += float", m.ints(3), 1.5, exc=(TypeError, RuntimeError),
                  match=r"add_.*(float|Float).*(int64|Long)"),
        ErrorCase("result shape grows", m(3, 1), m(3, 4), exc=(ValueError, RuntimeError),
                  match=r"add_.*\(3, 1\).*\(3, 4\)"),
    ]),
    OpRow(".sub_", differentiable=False, samples=lambda m: [
        Sample("tensor_alpha", m(3, 4), m(3, 4), alpha=0.5),
    ]),
    OpRow(".mul_", differentiable=False, samples=lambda m: [
        Sample("tensor", m(3, 4), m(1, 4)), Sample("scalar", m(3, 4), -2),
    ]),
    OpRow(".div_", differentiable=False, samples=lambda m: [
        Sample("tensor", m(3, 4), m(3, 4, kind="pos")), Sample("scalar", m(3, 4), 4),
    ], errors=lambda m: [
        ErrorCase("int tensor /= int", m.ints(3), 2, exc=(TypeError, RuntimeError),
                  match=r"div_.*(float|Float).*(int64|Long)"),
    ]),
    OpRow(".fill_", differentiable=False, samples=lambda m: [
        Sample("float", m(3, 4), 2.5), Sample("int_tensor_int", m.ints(3), 7),
        Sample("0d_tensor_value", m(2, 2), Const(m())),
        Sample("bool_tensor", m.bools(3), 0),
        Sample("bool_tensor_int", m.bools(3), 2),
    ]),
    OpRow(".zero_", differentiable=False, samples=lambda m: [
        Sample("3x4", m(3, 4)), Sample("bool", m.bools(3)), Sample("int", m.ints(3)),
    ]),
    OpRow(".copy_", differentiable=False, samples=lambda m: [
        Sample("same", m(3, 4), m(3, 4)),
        Sample("bcast", m(3, 4), m(4)),
        Sample("cast_from_int", m(3), m.ints(3)),
    ]),
    OpRow(lambda x, i, v: (x.__setitem__(i, v), x)[1], name="Tensor.__setitem__",
          differentiable=False, samples=lambda m: [
              Sample("int_scalar", m(3, 4), 1, 0.5),
              Sample("slice_tensor", m(3, 4), (slice(None), slice(1, 3)), m(3, 2)),
              Sample("bool_mask", m(3, 4), Const(m.bools(3, 4)), 0.0),
              Sample("bcast_row", m(3, 4), 0, m(4)),
          ]),
    *[OpRow(f".{name}", differentiable=False, samples=lambda m: [
        Sample("floats", m(3, 4) * 3), Sample("ints", m.ints(3, low=-2)),
        Sample("0d", m()),
    ]) for name in ("long", "int", "bool")],
    *[OpRow(f".{name}", name=f".{name}(memory_format)", differentiable=False,
            samples=lambda m: [
                Sample("contiguous", m(4, 3, layout="T"), memory_format="contiguous_format"),
                Sample("preserve", m(4, 3, layout="T"), memory_format="preserve_format"),
            ], torch_op=lambda x, memory_format, name=name: getattr(x, name)(
                memory_format=getattr(__import__("torch"), memory_format)))
      for name in ("float", "double", "long", "int", "bool", "half")],
    OpRow(".detach", differentiable=False, samples=lambda m: [Sample("3x4", m(3, 4))]),
    # in place on a non-leaf (x * 1): the result is x * 1 changed in place, its history
    # rebased onto the op, so gradients reach x and the operands (compared, gradchecked)
    *[OpRow((lambda op: lambda x, *a, **k: getattr(x * 1, op)(*a, **k))(name),
            name=f"Tensor.{name} (non-leaf)", samples=samples) for name, samples in (
        ("add_", lambda m: [Sample("bcast_alpha", m(3, 4), m(4), alpha=0.5),
                            Sample("scalar", m(3, 4), 2.0)]),
        ("sub_", lambda m: [Sample("tensor_alpha", m(3, 4), m(3, 4), alpha=2)]),
        ("mul_", lambda m: [Sample("bcast", m(3, 4), m(4)), Sample("scalar", m(3, 4), -1.5)]),
        ("div_", lambda m: [Sample("tensor", m(3, 4), m(3, 4, kind="pos"))]),
        ("addcmul_", lambda m: [Sample("value", m(3, 4), m(3, 4), m(4), value=0.5)]),
        ("addcdiv_", lambda m: [Sample("value", m(3, 4), m(3, 4), m(4, kind="pos"), value=2)]),
        ("pow_", lambda m: [Sample("scalar", m(3, 4, kind="pos"), 3),
                            Sample("tensor", m(3, 4, kind="pos"), m(4))]),
        # values 0.5 apart, off the kinks and bounds
        ("clamp_", lambda m: [Sample("min_max", m(3, 4, kind="distinct") * 50 + 0.25, -0.45,
                                     0.45)]),
        ("clamp_min_", lambda m: [Sample("min", m(3, 4, kind="distinct") * 50 + 0.25, 0.05)]),
        ("masked_fill_", lambda m: [Sample("mask", m(3, 4), m.bools(3, 4), 0.5)]),
        ("fill_", lambda m: [Sample("0d_tensor", m(3, 4), m())]),
        ("copy_", lambda m: [Sample("bcast", m(3, 4), m(4))]),
        *[(name, lambda m: [Sample("3x4", m(3, 4, kind="pos"))])
          for name in ("exp_", "log_", "sqrt_", "neg_", "tanh_", "sigmoid_")],
        *[(name, lambda m: [Sample("3x4", m(3, 4, kind="distinct") * 50 + 0.25)])
          for name in ("abs_", "relu_")],
    )],
    # ---- reductions
    OpRow(".sum", samples=_sum_samples, errors=_dim_error("sum")),
    OpRow(".mean", samples=_reduce_samples, errors=lambda m: _dim_error("mean")(m) + [
        ErrorCase("int input", m.ints(3), exc=(TypeError, RuntimeError), match=r"mean.*int64"),
    ]),
    OpRow(".max", samples=_extreme_samples, errors=lambda m: _dim_error("max")(m) + [
        ErrorCase("empty without dim", m(0, 3), exc=(ValueError, RuntimeError, IndexError),
                  match=r"max.*(non-empty|\(0, 3\))"),
    ]),
    OpRow(".min", samples=_extreme_samples, errors=lambda m: _dim_error("min")(m) + [
        ErrorCase("empty without dim", m(0, 3), exc=(ValueError, RuntimeError, IndexError),
                  match=r"min.*(non-empty|\(0, 3\))"),
    ]),
    *[OpRow(f".{name}", name=f".{name}(other)", samples=lambda m, name=name: [
        Sample("same_shape", m(3, 4, kind="distinct"), m(3, 4, kind="distinct")),
        Sample("bcast", m(3, 1, kind="distinct"), m(4, kind="distinct")),
    ]) for name in ("max", "min")],
    *[OpRow(f"kiln.{name}", samples=_elementwise_extreme_samples, errors=lambda m, name=name: [
        ErrorCase("scalar other", m(3), 2.0, exc=TypeError, match=rf"{name}.*other.*float"),
        ErrorCase("unbroadcastable", m(2, 3), m(4, 3), exc=ValueError,
                  match=rf"{name}.*\(2, ?3\).*\(4, ?3\)"),
    ]) for name in ("maximum", "minimum")],
    OpRow(".prod", samples=lambda m: [
        Sample("all", m(2, 3, 4)),
        Sample("dim1", m(3, 4), 1),
        Sample("dim0_keepdim", m(3, 4), 0, keepdim=True),
        Sample("dim-1", m(2, 3, 4), -1),
        Sample("one_zero", np.array([[1.5, 0.0, -2.0], [0.5, 2.0, 3.0]], m.dtype), 1),
        Sample("two_zeros", np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 3.0]], m.dtype), 1),
        Sample("zero_all", np.array([1.5, 0.0, -2.0], m.dtype)),
        Sample("0d", m()),
        Sample("0d_dim0", m(), 0),
        Sample("noncontig", m(4, 3, layout="T"), 0),
        Sample("empty_dim", m(0, 3), 0),
        Sample("int_input", m.ints(3, 4, low=-3), 1),
        Sample("bool_input", m.bools(3, 4)),
        Sample("dtype_f64", m(3, 4), 1, dtype=F64),
        Sample("int_dtype_uint8", m.ints(3, 4), 1, dtype=np.dtype(np.uint8)),
        Sample("bool_dtype_bool", m.bools(3, 4), 0, dtype=np.dtype(np.bool_)),
    ], errors=lambda m: _dim_error("prod")(m) + [
        ErrorCase("dims tuple", m(2, 3), (0, 1), exc=TypeError, match=r"prod.*dim"),
    ]),
    OpRow(".cumsum", samples=lambda m: [
        Sample("dim0", m(3, 4), 0),
        Sample("dim-1", m(2, 3, 4), -1),
        Sample("kw_dim", m(5), dim=0),
        Sample("0d", m(), 0),
        Sample("noncontig", m(4, 3, layout="T"), 1),
        Sample("empty", m(0, 3), 0),
        Sample("int_input", m.ints(3, 4), 1),
        Sample("bool_input", m.bools(3, 4), 0),
        Sample("dtype_f64", m(3, 4), 1, dtype=F64),
        Sample("int_dtype_int32", m.ints(3, 4), 1, dtype=np.dtype(np.int32)),
    ], errors=_dim_error("cumsum")),
    *[OpRow(f".{name}", samples=lambda m: [
        Sample("all", m(2, 3, 4)),
        Sample("dim1", m(3, 4), 1),
        Sample("dims_keepdim", m(2, 3, 4), (0, 2), keepdim=True),
        Sample("unbiased_positional", m(3, 4), 1, False),
        Sample("unbiased_only", m(3, 4), False),
        Sample("correction0", m(3, 4), 1, correction=0),
        Sample("correction2", m(3, 5), dim=1, correction=2),
        Sample("noncontig", m(4, 3, layout="T"), 0),
        Sample("one_element", m(3, 1), 1, gradcheck=False),
        Sample("nan", np.array([[1.0, np.nan], [2.0, 3.0]], m.dtype), 1, gradcheck=False),
    ], errors=lambda m, name=name: _dim_error(name)(m) + [
        ErrorCase("int input", m.ints(3), exc=(TypeError, RuntimeError),
                  match=rf"{name}.*int64"),
    ], no_backward=("one_element",)) for name in ("var", "std")],
    OpRow(".logsumexp", samples=lambda m: [
        Sample("dim1", m(3, 4), 1),
        Sample("dims_keepdim", m(2, 3, 4), (0, 2), keepdim=True),
        Sample("dim-1", m(2, 3, 4), -1),
        Sample("large", m(3, 4) * 100, 1),
        Sample("0d", m(), 0),
        Sample("noncontig", m(4, 3, layout="T"), 0),
        Sample("neg_inf", np.array([[-np.inf, 0.5], [1.0, 2.0]], m.dtype), 1, gradcheck=False),
        Sample("inf", np.array([[np.inf, 0.5], [1.0, 2.0]], m.dtype), 1, gradcheck=False),
        Sample("int_input", m.ints(3, 4), 1),
    ], errors=_dim_error("logsumexp"), no_backward=("inf",)),
    OpRow(".norm", samples=lambda m: [
        Sample("fro", m(3, 4)),
        Sample("p2_dim1", m(3, 4), 2, 1),
        Sample("p1_dims_keepdim", m(2, 3, 4), 1, (0, 2), True),
        Sample("p3_kw", m(3, 4), p=3, dim=-1),
        Sample("p0.5", m(3, 4), 0.5, 1),
        Sample("p-1", m(3, 4), -1, 1),
        Sample("inf", m(3, 4, kind="distinct"), float("inf"), 1),
        Sample("-inf", m(3, 4, kind="distinct"), float("-inf")),
        Sample("inf_ties", np.array([[2.0, -2.0, 1.0], [0.5, 0.0, 0.5]], m.dtype),
               float("inf"), 1, gradcheck=False),
        Sample("p0", m(3, 4), 0, 1),
        Sample("zero_row_p2", np.array([[0.0, 0.0], [1.0, 2.0]], m.dtype), 2, 1,
               gradcheck=False),
        Sample("zero_row_p3", np.array([[0.0, 0.0], [1.0, 2.0]], m.dtype), 3, 1,
               gradcheck=False),
        Sample("0d", m()),
        Sample("noncontig", m(4, 3, layout="T"), 2, 0),
        Sample("empty", m(0, 3)),
        Sample("dtype_f64", m(3, 4), dtype=F64),
    ], errors=lambda m: [
        ErrorCase("int input", m.ints(3), exc=(TypeError, RuntimeError), match=r"norm.*int64"),
        ErrorCase("inf of empty", m(0, 3), float("inf"), exc=RuntimeError,
                  match=r"norm.*empty.*\(0, 3\)"),
        ErrorCase("dim out of range", m(2, 3), 2, 2, exc=IndexError,
                  match=r"norm.*dimension 2 out of range"),
    ]),
    OpRow(".norm", name=".norm (nuc)", samples=lambda m: [
        Sample("2d", m(3, 4), "nuc"),
        Sample("dims_keepdim", m(2, 3, 4), "nuc", (0, 2), True),
        Sample("noncontig", m(4, 3, layout="T"), p="nuc"),
    ], errors=lambda m: [
        ErrorCase("3d without dim", m(2, 3, 4), "nuc", exc=RuntimeError,
                  match=r"norm: dim must be a 2-tuple"),
        ErrorCase("1d", m(3), "nuc", exc=RuntimeError, match=r"norm.*at least 2 dimensions"),
    ]),
    OpRow(_linalg("matrix_norm", "kiln"), name="linalg.matrix_norm",
          torch_op=_linalg("matrix_norm", "torch"), samples=lambda m: [
        Sample(name, m(2, 3, 4), order)
        for name, order in (("nuc", "nuc"), ("2", 2), ("-2", -2), ("inf", float("inf")),
                            ("-inf", float("-inf")), ("1", 1), ("-1", -1))
    ] + [
        Sample("fro", m(3, 4)),
        Sample("dims_keepdim", m(3, 2, 4), "nuc", (2, 0), True),
        Sample("inf_dims", m(3, 2, 4), float("inf"), dim=(0, 2)),
        Sample("noncontig_2", m(4, 3, layout="T"), 2),
        Sample("fro_zero", np.zeros((2, 2), m.dtype), gradcheck=False),
        Sample("inf_ties", np.array([[1.0, -2.0], [2.0, 1.0]], m.dtype), float("inf"),
               gradcheck=False),
        Sample("fro_empty", m(0, 3)),
    ], errors=lambda m: [
        ErrorCase("1d", m(3), exc=RuntimeError, match=r"matrix_norm.*at least 2 dimensions"),
        ErrorCase("bad ord", m(3, 3), 3, exc=RuntimeError, match=r"matrix_norm: Order 3"),
        ErrorCase("dim of 3", m(2, 3, 3), "fro", (0, 1, 2), exc=RuntimeError,
                  match=r"matrix_norm: dim must be a 2-tuple"),
        ErrorCase("int input", m.ints(3, 3), exc=RuntimeError, match=r"matrix_norm.*int64"),
    ]),
    OpRow(_linalg("norm", "kiln"), name="linalg.norm", torch_op=_linalg("norm", "torch"),
          samples=lambda m: [
        Sample("vector_all", m(2, 3, 4)),
        Sample("matrix_ord", m(3, 4), "nuc"),
        Sample("matrix_inf", m(3, 4), float("inf")),
        Sample("vector_ord", m(5), 3),
        Sample("vector_dim", m(2, 3, 4), 1, 1),
        Sample("matrix_dims", m(2, 3, 4), 2, (1, 2), True),
    ], errors=lambda m: [
        ErrorCase("ord without dim on 3d", m(2, 3, 4), 2, exc=RuntimeError,
                  match=r"linalg.norm: If dim is not specified but ord is, the input must "
                        r"be 1D or 2D"),
    ]),
    OpRow(_linalg("vector_norm", "kiln"), name="linalg.vector_norm",
          torch_op=_linalg("vector_norm", "torch"), samples=lambda m: [
        Sample("all", m(2, 3, 4)), Sample("p1_dims", m(2, 3, 4), 1, (0, 2), True),
        Sample("inf_dim", m(3, 4, kind="distinct"), float("inf"), 1),
    ]),
    OpRow(".sort", samples=_sort_samples, errors=lambda m: _dim_error("sort")(m)),
    OpRow(".argsort", samples=_sort_samples, differentiable=False, errors=_dim_error("argsort")),
    OpRow(".topk", samples=lambda m: [
        Sample("k2", m(3, 5, kind="distinct"), 2),
        Sample("dim0", m(4, 3, kind="distinct"), 3, 0),
        Sample("smallest", m(3, 5, kind="distinct"), 2, largest=False),
        Sample("k0", m(3, 5, kind="distinct"), 0),
        Sample("k_all", m(2, 4, kind="distinct"), 4, dim=-1),
        Sample("0d", m(kind="distinct"), 1),
        Sample("noncontig", m(4, 3, kind="distinct", layout="T"), 2, 0),
        Sample("nan", np.array([[1.0, np.nan, 3.0, 2.0]], m.dtype), 2, gradcheck=False),
        Sample("int_input", m.rng.permutation(12).reshape(3, 4), 2),
    ], errors=lambda m: [
        ErrorCase("k too large", m(3, 4), 5, exc=RuntimeError, match=r"topk.*k=5.*\(3, 4\)"),
        ErrorCase("negative k", m(3, 4), -1, exc=RuntimeError, match=r"topk.*k=-1"),
        ErrorCase("dim out of range", m(2, 3), 1, 2, exc=IndexError,
                  match=r"topk.*dimension 2 out of range"),
    ]),
    OpRow(".argmax", samples=_arg_samples, differentiable=False, errors=_dim_error("argmax")),
    OpRow(".argmin", samples=_arg_samples, differentiable=False, errors=_dim_error("argmin")),
    # ---- shape ops
    OpRow(".reshape", samples=lambda m: [
        Sample("flat", m(2, 3, 4), -1),
        Sample("tuple", m(2, 3, 4), (4, 6)),
        Sample("infer", m(2, 3, 4), 3, -1, 2),
        Sample("to_0d", m(1), ()),
        Sample("from_0d", m(), 1, 1),
        Sample("noncontig", m(4, 3, layout="T"), 2, 6),
        Sample("empty", m(0, 3), 3, 0),
    ], errors=_shape_errors("reshape")),
    OpRow(".view", samples=lambda m: [
        Sample("flat", m(2, 3, 4), -1),
        Sample("tuple", m(2, 3, 4), (4, 6)),
        Sample("infer", m(2, 3, 4), 3, -1, 2),
        Sample("sliced_viewable", m(2, 3, 4, layout="step"), 6, 4),
    ], errors=lambda m: _shape_errors("view")(m) + [
        ErrorCase("not viewable (transposed)", m(4, 3, layout="T"), -1, exc=RuntimeError,
                  match=r"view.*(stride|contiguous)"),
    ]),
    OpRow(".view_as", samples=lambda m: [Sample("2x6", m(3, 4), Const(m(2, 6)))],
          errors=lambda m: [
              ErrorCase("numel differs", m(3, 4), Const(m(5)), exc=RuntimeError,
                        match=r"(view|reshape).*\(5,\).*\(3, 4\)|(view|reshape).*\(3, 4\)"),
          ]),
    OpRow(".flatten", samples=lambda m: [
        Sample("all", m(2, 3, 4)),
        Sample("start1", m(2, 3, 4, 5), 1),
        Sample("start1_end2", m(2, 3, 4, 5), 1, 2),
        Sample("negative", m(2, 3, 4), start_dim=-2, end_dim=-1),
        Sample("0d", m()),
        Sample("noncontig", m(4, 3, layout="T")),
    ], errors=lambda m: [
        ErrorCase("start after end", m(2, 3, 4), 2, 1, exc=(ValueError, RuntimeError),
                  match=r"flatten.*start_dim"),
    ]),
    OpRow(".unsqueeze", samples=lambda m: [
        Sample("0", m(3, 4), 0), Sample("-1", m(3, 4), -1), Sample("1", m(3, 4), 1),
        Sample("0d", m(), 0), Sample("0d_-1", m(), -1), Sample("end", m(3, 4), 2),
    ], errors=lambda m: [
        ErrorCase("dim out of range", m(3, 4), 3, exc=IndexError, match=r"unsqueeze.*3"),
    ]),
    OpRow(".squeeze", samples=lambda m: [
        Sample("all", m(1, 3, 1, 2)),
        Sample("dim0", m(1, 3, 1), 0),
        Sample("dim_not_1", m(1, 3, 1), 1),
        Sample("dim-1", m(1, 3, 1), -1),
        Sample("0d", m()),
        Sample("0d_dim0", m(), 0),
        Sample("empty_tuple", m(1, 3, 1), ()),
        Sample("dims_tuple", m(1, 3, 1, 2), (0, 2)),
    ]),
    OpRow(".permute", samples=lambda m: [
        Sample("varargs", m(2, 3, 4), 2, 0, 1),
        Sample("tuple", m(2, 3, 4), (1, 2, 0)),
        Sample("negative", m(2, 3, 4), -1, -3, -2),
        Sample("noncontig", m(4, 3, layout="T"), 1, 0),
        Sample("0d", m(), ()),
    ], errors=lambda m: [
        ErrorCase("repeated dim", m(2, 3), 0, 0, exc=(ValueError, RuntimeError),
                  match=r"permute"),
        ErrorCase("wrong count", m(2, 3, 4), 0, 1, exc=(ValueError, RuntimeError),
                  match=r"permute.*\(0, 1\).*3 dim"),
    ]),
    OpRow(".transpose", samples=lambda m: [
        Sample("0_1", m(2, 3), 0, 1), Sample("neg", m(2, 3, 4), -1, 0),
        Sample("same", m(2, 3), 1, 1),
        Sample("0d", m(), 0, -1),
    ], errors=lambda m: [
        ErrorCase("dim out of range", m(2, 3), 0, 2, exc=IndexError, match=r"transpose.*2"),
    ]),
    OpRow(".t", samples=lambda m: [Sample("2d", m(2, 3)), Sample("1d", m(3)), Sample("0d", m())]),
    OpRow(lambda x: x.T, name="Tensor.T", samples=lambda m: [Sample("2d", m(2, 3))]),
    OpRow(".expand", samples=lambda m: [
        Sample("bcast", m(3, 1), 3, 4),
        Sample("minus1", m(3, 1), -1, 5),
        Sample("new_leading", m(1, 3), (2, 4, 3)),
        Sample("0d", m(), 2, 2),
        Sample("same_size", m(2, 3), 2, 3),
    ], errors=lambda m: [
        ErrorCase("-1 in a new leading dim", m(3), -1, 3, exc=(ValueError, RuntimeError),
                  match=r"expand.*-1"),
        ErrorCase("non-singleton", m(3, 2), 3, 4, exc=(ValueError, RuntimeError),
                  match=r"expand.*\(3, 2\)"),
        ErrorCase("fewer sizes than dims", m(2, 3), 3, exc=(ValueError, RuntimeError),
                  match=r"expand.*\(2, 3\)"),
    ]),
    OpRow(".expand_as", samples=lambda m: [
        Sample("bcast", m(3, 1), Const(m(2, 3, 4))),
        Sample("0d", m(), Const(m(2, 2))),
    ], errors=lambda m: [
        ErrorCase("non-singleton", m(3, 2), Const(m(3, 4)), exc=RuntimeError,
                  match=r"expand.*\(3, 2\)"),
    ]),
    OpRow(".repeat", samples=lambda m: [
        Sample("same_ndim", m(2, 3), 2, 3),
        Sample("extra_dims", m(2, 3), 2, 1, 2),
        Sample("tuple", m(3), (2, 2)),
        Sample("0d", m(), 2, 3),
        Sample("zero", m(2, 3), 0, 1),
        Sample("noncontig", m(4, 3, layout="T"), 1, 2),
        Sample("int_input", m.ints(2, 2), 2, 1),
    ], errors=lambda m: [
        ErrorCase("fewer sizes than dims", m(2, 3), 2, exc=RuntimeError,
                  match=r"repeat.*\(2, 3\)"),
    ]),
    OpRow(".chunk", samples=lambda m: [
        Sample("uneven", m(5, 2), 3),
        Sample("fewer_than_asked", m(6, 2), 4),
        Sample("dim1", m(2, 6), 2, 1),
        Sample("kw_dim_neg", m(2, 5), 2, dim=-1),
        Sample("more_than_size", m(2, 3), 5),
        Sample("noncontig", m(4, 3, layout="T"), 2, 1),
    ], errors=lambda m: [
        ErrorCase("zero chunks", m(3, 4), 0, exc=RuntimeError, match=r"chunk.*0"),
        ErrorCase("0-d", m(), 1, exc=RuntimeError, match=r"chunk.*1-dim"),
    ]),
    OpRow(".split", samples=lambda m: [
        Sample("int", m(5, 2), 2),
        Sample("sizes", m(5, 2), [1, 3, 1]),
        Sample("tuple_dim1", m(2, 5), (2, 3), 1),
        Sample("larger_than_dim", m(3, 2), 4),
        Sample("kw_dim", m(2, 4), 2, dim=-1),
        Sample("zero_size_piece", m(3, 2), [0, 3]),
        Sample("empty_dim", m(0, 2), 0),
    ], errors=lambda m: [
        ErrorCase("sizes do not add up", m(3, 4), [1, 1], exc=RuntimeError,
                  match=r"split.*\[1, 1\].*3"),
        ErrorCase("negative size", m(3, 4), -1, exc=RuntimeError, match=r"split.*-1"),
        ErrorCase("zero size", m(3, 4), 0, exc=RuntimeError, match=r"split.*0"),
    ]),
    OpRow(".narrow", samples=lambda m: [
        Sample("dim1", m(3, 5), 1, 1, 3),
        Sample("negative_start", m(3, 5), -1, -3, 2),
        Sample("empty", m(3, 5), 0, 3, 0),
        Sample("noncontig", m(4, 3, layout="T"), 0, 1, 2),
        Sample("tensor_start", m(3, 5), 1, np.array(2), 2),
    ], errors=lambda m: [
        ErrorCase("past the end", m(3, 4), 1, 3, 2, exc=RuntimeError,
                  match=r"narrow.*\(3\).*\(2\).*\(3, 4\)"),
    ]),
    OpRow(".masked_fill", samples=lambda m: [
        Sample("scalar", m(3, 4), Const(m.bools(3, 4)), -1.5),
        Sample("bcast_mask", m(3, 4), Const(m.bools(4)), 0.0),
        Sample("mask_bcasts_input", m(3, 4), Const(m.bools(2, 3, 4)), 2.0),
        Sample("0d_value_grad", m(3, 4), Const(m.bools(3, 4)), m()),
        Sample("0d_value_const", m(3, 4), Const(m.bools(1, 4)), Const(m())),
        Sample("noncontig", m(4, 3, layout="T"), Const(m.bools(4, 3)), 1.0),
        Sample("inf", m(2, 3), Const(m.bools(2, 3)), -np.inf, gradcheck=False),
        Sample("int_input_float_value", m.ints(2, 3), Const(m.bools(2, 3)), 1.7),
    ], errors=lambda m: [
        ErrorCase("int mask", m(3, 4), m.ints(3, 4, high=2), 1.0, exc=RuntimeError,
                  match=r"masked_fill.*bool.*int64"),
        ErrorCase("1-d value", m(3, 4), Const(m.bools(3, 4)), Const(m(2)), exc=RuntimeError,
                  match=r"masked_fill.*0-dim.*\(2,\)"),
    ]),
    OpRow(".gather", samples=lambda m: [
        Sample("dim1_repeats", m(3, 4), 1, np.array([[0, 0], [1, 3], [3, 3]])),
        Sample("dim0", m(3, 4), 0, m.ints(2, 4, high=3)),
        Sample("dim-1_3d", m(2, 3, 4), -1, m.ints(2, 3, 5, high=4)),
        Sample("smaller_index", m(3, 4), 1, m.ints(2, 2, high=4)),
        Sample("0d", m(), 0, np.array(0)),
        Sample("empty_index", m(3, 4), 1, m.ints(3, 0)),
        Sample("noncontig", m(4, 3, layout="T"), 1, m.ints(4, 3, high=3)),
        Sample("int_input", m.ints(3, 4), 1, m.ints(3, 2, high=4)),
        Sample("0d_index_1d_input", m(5), 0, np.array(3)),
        Sample("1d_index_0d_input", m(), 0, np.array([0, 0])),
    ], errors=lambda m: [
        ErrorCase("float index", m(3, 4), 1, m(3, 4), exc=RuntimeError,
                  match=r"gather.*int32/int64.*float32"),
        ErrorCase("out of bounds", m(3, 4), 1, np.full((3, 4), 7), exc=RuntimeError,
                  match=r"gather.*7.*size 4"),
        ErrorCase("negative", m(3, 4), 1, np.full((3, 4), -1), exc=RuntimeError,
                  match=r"gather.*-1"),
        ErrorCase("ndim mismatch", m(3, 4), 1, m.ints(3), exc=RuntimeError,
                  match=r"gather.*\(3,\).*\(3, 4\)"),
        ErrorCase("index too large", m(3, 4), 1, m.ints(4, 4, high=4), exc=RuntimeError,
                  match=r"gather.*\(4, 4\).*\(3, 4\)"),
    ]),
    OpRow(".scatter", samples=lambda m: [
        Sample("src_dim1", m(3, 4), 1, _rows_of(m, 3, 4, 2), m(3, 2)),
        Sample("src_larger", m(3, 4), 1, _rows_of(m, 2, 4, 3), m(3, 5)),
        Sample("src_dim0", m(4, 3), 0, _rows_of(m, 3, 4, 4).T.copy(), m(4, 3)),
        Sample("value", m(3, 4), 1, _rows_of(m, 3, 4, 2), 2.5),
        Sample("src_const", m(3, 4), -1, _rows_of(m, 3, 4, 1), Const(m(3, 1))),
        Sample("0d", m(), 0, np.array(0), m()),
        Sample("int_input", m.ints(3, 4), 1, _rows_of(m, 3, 4, 2), m.ints(3, 2)),
        Sample("reduce_add_repeats", m(3, 4), 1, np.array([[0, 0], [1, 3], [2, 2]]), m(3, 2),
               reduce="add", gradcheck=False),
        Sample("reduce_multiply_value", m(3, 4), 0, np.array([[0, 1, 0, 2]]), 2.5,
               reduce="multiply", gradcheck=False),
        Sample("reduce_add_0d", m(), 0, np.array(0), m(), reduce="add", gradcheck=False),
    ], errors=lambda m: [
        ErrorCase("dtype mismatch", m(3, 4), 1, _rows_of(m, 3, 4, 2),
                  Const(m(3, 2, dtype=F64)), exc=RuntimeError,
                  match=r"scatter.*float32.*float64"),
        ErrorCase("out of bounds", m(3, 4), 1, np.full((3, 1), 4), 1.0, exc=RuntimeError,
                  match=r"scatter.*4.*size 4"),
        ErrorCase("src too small", m(3, 4), 1, _rows_of(m, 3, 4, 3), m(3, 2),
                  exc=RuntimeError, match=r"scatter.*\(3, 3\).*\(3, 2\)"),
        ErrorCase("bad reduce", m(3, 4), 1, _rows_of(m, 3, 4, 2), 1.0, reduce="max",
                  exc=RuntimeError, match=r"scatter.*add or multiply.*'max'"),
    # PyTorch's own backward fails when src is larger than index (it returns the
    # gradient in index's shape), and has no derivative with reduce=
    ], no_backward=("src_larger", "reduce_add_repeats", "reduce_multiply_value",
                    "reduce_add_0d")),
    OpRow(".index_select", samples=lambda m: [
        Sample("dim0_repeats", m(3, 4), 0, np.array([2, 0, 2])),
        Sample("dim1", m(3, 4), 1, np.array([3, 1])),
        Sample("dim-1_3d", m(2, 3, 4), -1, np.array([0, 0, 1])),
        Sample("0d_index", m(3, 4), 1, np.array(2)),
        Sample("0d_input", m(), 0, np.array([0])),
        Sample("empty_index", m(3, 4), 0, np.zeros(0, np.int64)),
        Sample("noncontig", m(4, 3, layout="T"), 1, np.array([2, 0])),
        Sample("int32_index", m(3, 4), 0, np.array([1, 2], np.int32)),
    ], errors=lambda m: [
        ErrorCase("2-d index", m(3, 4), 1, m.ints(2, 2, high=3), exc=IndexError,
                  match=r"index_select.*vector.*\(2, 2\)"),
        ErrorCase("out of bounds", m(3, 4), 1, np.array([5]), exc=RuntimeError,
                  match=r"index_select.*5.*size 4"),
    ]),
    OpRow(".mm", samples=lambda m: [
        Sample("2x3_3x4", m(2, 3), m(3, 4)),
        Sample("noncontig", m(4, 3, layout="T"), m(3, 2)),
    ], errors=lambda m: [
        ErrorCase("1-d", m(2, 3), m(3), exc=RuntimeError, match=r"mm.*mat2.*matrix.*\(3,\)"),
        ErrorCase("inner mismatch", m(2, 3), m(4, 2), exc=RuntimeError,
                  match=r"mm.*\(2, 3\).*\(4, 2\)"),
    ]),
    OpRow(".bmm", samples=lambda m: [Sample("2x2x3_2x3x4", m(2, 2, 3), m(2, 3, 4))],
          errors=lambda m: [
              ErrorCase("batch mismatch", m(2, 2, 3), m(3, 3, 4), exc=RuntimeError,
                        match=r"bmm.*\(2, 2, 3\).*\(3, 3, 4\)"),
              ErrorCase("2-d", m(2, 3), m(3, 4), exc=RuntimeError, match=r"bmm.*3D"),
          ]),
    OpRow("kiln.einsum", samples=lambda m: [
        Sample("matmul", "ij,jk->ik", m(2, 3), m(3, 4)),
        Sample("batched", "bij,bjk->bik", m(2, 2, 3), m(2, 3, 2)),
        Sample("implicit", "ij,jk", m(2, 3), m(3, 4)),
        Sample("implicit_order", "ba", m(2, 3)),
        Sample("trace", "ii->", m(3, 3)),
        Sample("diagonal", "ii->i", m(3, 3)),
        Sample("diagonal_batched", "bii->bi", m(2, 3, 3)),
        Sample("outer", "i,j->ij", m(3), m(4)),
        Sample("sum_all", "ij->", m(2, 3)),
        Sample("letter_of_one_operand", "ij,j->j", m(2, 3), m(3)),
        Sample("ellipsis", "...ij,...jk->...ik", m(2, 2, 3), m(2, 3, 2)),
        Sample("ellipsis_bcast", "...ij,...jk->...ik", m(1, 2, 3), m(4, 3, 2)),
        Sample("ellipsis_ranks", "...j,j->...", m(2, 3, 4), m(4)),
        Sample("size1_bcast", "ij,ij->ij", m(1, 3), m(4, 3)),
        Sample("transpose_spaces", "i j -> j i", m(2, 3)),
        Sample("uppercase", "Ab,bC->AC", m(2, 3), m(3, 2)),
        Sample("list_operands", "ij,jk->ik", [m(2, 3), m(3, 4)]),
        Sample("three", "ij,jk,kl->il", m(2, 3), m(3, 2), m(2, 2)),
        Sample("noncontig", "ij,jk->ik", m(3, 2, layout="T"), m(2, 4, layout="step")),
        Sample("int", "ij,jk->ik", m.ints(2, 3), m.ints(3, 2)),
        Sample("0d", ",ij->ij", m(), m(2, 2)),
    ], errors=lambda m: [
        ErrorCase("operand count", "ij,jk->ik", m(2, 3), exc=RuntimeError,
                  match=r"einsum: 2 subscripts.*1 operands"),
        ErrorCase("rank mismatch", "ij->i", m(2, 3, 4), exc=RuntimeError,
                  match=r"einsum.*'ij'.*\(2, 3, 4\)"),
        ErrorCase("size mismatch", "ij,jk->ik", m(2, 3), m(4, 2), exc=RuntimeError,
                  match=r"einsum.*\(2, 3\).*\(4, 2\)"),
        ErrorCase("unknown output letter", "ij->k", m(2, 3), exc=RuntimeError,
                  match=r"einsum.*\['k'\]"),
        ErrorCase("not a letter", "i1->i", m(2, 3), exc=RuntimeError, match=r"einsum.*letters"),
        ErrorCase("dtype mismatch", "i,i->", m(3), Const(m(3, dtype=F64)), exc=RuntimeError,
                  match=r"einsum.*float32.*float64"),
    ]),
    OpRow(".contiguous", samples=lambda m: [Sample("noncontig", m(4, 3, layout="T"))]),
    OpRow(".clone", samples=lambda m: [
        Sample("3x4", m(3, 4)), Sample("noncontig", m(4, 3, layout="T")),
    ]),
    OpRow(".double", samples=lambda m: [Sample("3x4", m(3, 4))]),
    *(OpRow(_channels_last(name), name=f".{name} (channels_last)", samples=lambda m: [
        Sample("4d", m(2, 3, 4, 5)), Sample("noncontig", m(2, 3, 4, 5, layout="T")),
    ], errors=lambda m, name=name: [
        ErrorCase("3d", m(2, 3, 4), exc=RuntimeError,
                  match=rf"{name}: required rank 4 tensor to use channels_last format"),
    ], gradcheck=name != "float") for name in ("double", "float", "contiguous")),
    # float64 -> float32: finite differences cannot be resolved in float32
    OpRow(".float", samples=lambda m: [Sample("3x4", m(3, 4))], gradcheck=False),
    OpRow(".to", name=".to(float64)", samples=lambda m: [Sample("3x4", m(3, 4), F64)],
          torch_op=lambda x, d: x.to(__import__("torch").float64)),
    OpRow(operator.getitem, name="Tensor.__getitem__", samples=_getitem_samples,
          errors=_getitem_errors),
    OpRow("kiln.cat", samples=_cat_samples, errors=lambda m: [
        ErrorCase("size mismatch", [m(2, 3), m(2, 4)], exc=ValueError,
                  match=r"cat.*\(2, 3\).*\(2, 4\)"),
        ErrorCase("empty list", [], exc=(ValueError, RuntimeError), match=r"cat"),
        ErrorCase("0-d tensors", [m(), m()], exc=(ValueError, RuntimeError),
                  match=r"cat.*(zero-dim|0-d|\(\))"),
        ErrorCase("rank mismatch", [m(2, 3), m(3)], exc=(ValueError, RuntimeError),
                  match=r"cat.*\(2, 3\).*\(3,\)"),
        ErrorCase("dim out of range", [m(2, 3), m(2, 3)], 2, exc=IndexError, match=r"cat.*2"),
    ]),
    OpRow("kiln.stack", samples=_stack_samples, errors=lambda m: [
        ErrorCase("shape mismatch", [m(2, 3), m(3, 2)], exc=ValueError,
                  match=r"stack.*\(2, 3\).*\(3, 2\)"),
        ErrorCase("empty list", [], exc=(ValueError, RuntimeError), match=r"stack"),
    ]),
    OpRow("kiln.where", samples=lambda m: [
        Sample("same", _where_cond(m, 3, 4), m(3, 4), m(3, 4)),
        Sample("bcast", _where_cond(m, 3, 1), m(1, 4), m(3, 4)),
        Sample("scalar_other", _where_cond(m, 3, 4), m(3, 4), 0.0),
        Sample("scalar_input", _where_cond(m, 3, 4), 1.5, m(3, 4)),
        Sample("noncontig", _where_cond(m, 4, 3), m(4, 3, layout="T"), m(4, 3)),
        Sample("0d", _where_cond(m), m(), m()),
        Sample("both_scalars", _where_cond(m, 2, 3), 1.0, 0.0),
        Sample("f32_f64", _where_cond(m, 2, 3), Const(m(2, 3, dtype=F32)),
               Const(m(2, 3, dtype=F64))),
        Sample("int_float", _where_cond(m, 2, 3), m.ints(2, 3), m(2, 3)),
    ], errors=lambda m: [
        ErrorCase("int condition", m.ints(3), m(3), m(3), exc=(TypeError, ValueError, RuntimeError),
                  match=r"where.*condition.*bool"),
        ErrorCase("unbroadcastable", _where_cond(m, 2, 3), m(4, 3), m(2, 3),
                  exc=ValueError, match=r"where.*\(2, ?3\).*\(4, ?3\)"),
    ]),
]

_names = [row.name for row in OPS]
assert len(_names) == len(set(_names)), "op table: duplicate row names"
