"""Activations: every op of the C++ pointwise list (relu, leaky_relu, elu, selu, gelu,
sigmoid, tanh, hardswish, silu), softmax, log_softmax and prelu against PyTorch (forward
and every gradient, odd shapes, non-contiguous input, infinities, NaN and kinks),
float64 finite-difference gradchecks, the nn modules, ONNX export and bad input."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6)) if b.size else 0.0


def rand(shape: tuple[int, ...], seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(dtype)


def parity(kiln_fn, torch_fn, *arrays: np.ndarray, seed: int = 7) -> None:
    """Output and the gradient of every argument of kiln_fn match torch_fn (float32)."""
    torch = pytest.importorskip("torch")
    ks = [kiln.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    yk, yt = kiln_fn(*ks), torch_fn(*ts)
    assert yk.shape == tuple(yt.shape)
    assert yk.dtype == np.float32
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-4
    g = rand(yk.shape, seed)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    for k, t in zip(ks, ts):
        assert k.grad.shape == tuple(t.shape)
        assert rel_err(k.grad.numpy(), t.grad.numpy()) < 1e-4


def torch_f():
    return pytest.importorskip("torch").nn.functional


# name -> (kiln call, torch call)
POINTWISE = {
    "relu": (F.relu, lambda t: torch_f().relu(t)),
    # in place on a non-leaf (on a leaf that requires grad both refuse: test_inplace.py)
    "relu_inplace_arg": (lambda t: F.relu(t * 1, inplace=True),
                         lambda t: torch_f().relu(t * 1, inplace=True)),
    "leaky_relu": (F.leaky_relu, lambda t: torch_f().leaky_relu(t)),
    "leaky_relu_0.2": (lambda t: F.leaky_relu(t, 0.2), lambda t: torch_f().leaky_relu(t, 0.2)),
    "leaky_relu_neg": (lambda t: F.leaky_relu(t, -1.5), lambda t: torch_f().leaky_relu(t, -1.5)),
    "elu": (F.elu, lambda t: torch_f().elu(t)),
    "elu_alpha": (lambda t: F.elu(t, alpha=0.3), lambda t: torch_f().elu(t, alpha=0.3)),
    "selu": (F.selu, lambda t: torch_f().selu(t)),
    "gelu": (F.gelu, lambda t: torch_f().gelu(t)),
    "gelu_tanh": (
        lambda t: F.gelu(t, approximate="tanh"),
        lambda t: torch_f().gelu(t, approximate="tanh"),
    ),
    "sigmoid": (F.sigmoid, lambda t: torch_f().sigmoid(t)),
    "tanh": (F.tanh, lambda t: torch_f().tanh(t)),
    "hardswish": (F.hardswish, lambda t: torch_f().hardswish(t)),
    "hardswish_inplace_arg": (lambda t: F.hardswish(t * 1, inplace=True),
                              lambda t: torch_f().hardswish(t * 1, inplace=True)),
    "silu": (F.silu, lambda t: torch_f().silu(t)),
    "silu_inplace_arg": (lambda t: F.silu(t * 1, inplace=True),
                         lambda t: torch_f().silu(t * 1, inplace=True)),
    "hardsigmoid": (F.hardsigmoid, lambda t: torch_f().hardsigmoid(t)),
    "mish": (F.mish, lambda t: torch_f().mish(t)),
    "logsigmoid": (F.logsigmoid, lambda t: torch_f().logsigmoid(t)),
}
SHAPES = [(7,), (3, 5), (2, 3, 9, 7), (1, 1), (), (0, 4), (70000,)]


@pytest.mark.parametrize("name", sorted(POINTWISE))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pointwise_matches_torch(name, shape):
    kfn, tfn = POINTWISE[name]
    parity(kfn, tfn, rand(shape, seed=len(shape)))


def test_every_listed_op_has_a_functional_and_a_parity_case():
    """The C++ list is the one list: each of its ops is reachable as F.<name>, with the
    kernel's parameter names and defaults, and is compared with PyTorch above."""
    for name, meta in kiln.kernels.pointwise_ops().items():
        params = inspect.signature(getattr(F, name)).parameters
        for param, default in meta["params"].items():
            assert params[param].default == default, (name, param)
        assert name in POINTWISE, name
        assert meta["saved"] in ("input", "output")


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_non_contiguous_input(name):
    kfn, tfn = POINTWISE[name]
    x = rand((6, 5, 4), seed=3).transpose(2, 0, 1)[:, ::2]
    assert not x.flags.c_contiguous
    parity(kfn, tfn, x)


# Values where the ops decide by convention: infinities, the kinks of relu and friends,
# the ends of hardswish's ramp (gradient 0 at -3, 1 at 3, as PyTorch's).
EDGES = [0.0, -0.0, np.inf, -np.inf, -3.0, 3.0, -3.0001, 3.0001, -2.9999, 2.9999, 1e-30,
         -1e-30, 50.0, -50.0, 100.0, -100.0, -90.0, 89.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["relu", "hardswish", "silu", "sigmoid", "tanh", "elu", "selu"])
def test_pointwise_edges_match_torch(name, dtype):
    """Forward and gradient equal where they are NaN, infinite or zero; the edges three
    times over so that vectorized and scalar code both see them."""
    torch = pytest.importorskip("torch")
    x = np.array(EDGES * 3, dtype)
    kfn, tfn = POINTWISE[name]
    xk, xt = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yk, yt = kfn(xk), tfn(xt)
    yk.sum().backward()
    yt.sum().backward()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(yk.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=0)
    np.testing.assert_allclose(xk.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=0)


def test_pointwise_nan_input():
    """NaN in, NaN out; the gradient at NaN is NaN except where the backward tests
    x <= 0 (relu, elu, selu pass the incoming gradient, as PyTorch's scalar code does;
    its vectorized elu and selu give NaN, so PyTorch itself is not one answer)."""
    x = np.full(40, np.nan, np.float32)
    for name in kiln.kernels.pointwise_ops():
        xk = kiln.tensor(x, requires_grad=True)
        y = getattr(F, name)(xk)
        y.sum().backward()
        assert np.isnan(y.detach().numpy()).all(), name
        grad = xk.grad.numpy()
        if name == "relu":
            np.testing.assert_array_equal(grad, 1.0)
        elif name in ("elu", "selu", "leaky_relu"):
            assert np.isfinite(grad).all(), name
        elif name == "hardsigmoid":  # 0 outside (-3, 3), NaN included, as PyTorch
            np.testing.assert_array_equal(grad, 0.0)
        else:
            assert np.isnan(grad).all(), name


def test_hardswish_ramp_ends():
    x = kiln.tensor(np.array([-3.0, 3.0, -np.inf, np.inf], np.float64), requires_grad=True)
    y = F.hardswish(x)
    y.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), [-0.0, 3.0, np.nan, np.inf])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0, 1.0])


def test_pointwise_kinks_follow_torch():
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0, 100.0, -100.0], np.float32)
    for name in POINTWISE:
        kfn, tfn = POINTWISE[name]
        parity(kfn, tfn, x)


def test_relu_passes_nan_and_sigmoid_saturates():
    y = F.relu(kiln.tensor(np.array([np.nan, -1.0, 2.0], np.float32))).numpy()
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 2
    s = F.sigmoid(kiln.tensor(np.array([-1000.0, 1000.0], np.float32))).numpy()
    np.testing.assert_array_equal(s, [0.0, 1.0])


def test_inplace_writes_into_the_input_and_returns_it():
    x = kiln.tensor(rand((3, 4)), requires_grad=True)
    for fn in (F.relu, F.leaky_relu, F.elu, F.selu, F.hardswish, F.silu):
        h = x * 1
        want = fn(h).detach().numpy()
        assert fn(h, inplace=True) is h
        np.testing.assert_array_equal(h.detach().numpy(), want)
        h.sum().backward()
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
            fn(x, inplace=True)
    assert x.grad is not None


SOFTMAX_CASES = [
    ((4, 10), 1),
    ((4, 10), -1),
    ((4, 10), 0),
    ((2, 3, 5, 7), 1),
    ((2, 3, 5, 7), -3),
    ((2, 3, 5, 7), 3),
    ((2, 3, 5, 7), 0),
    ((3, 4, 300), 1),  # inner larger than one tile
    ((2, 600, 3), 1),
    ((1, 1000), 1),
    ((5,), 0),
    ((), 0),
    ((), -1),
    ((3, 0, 2), 1),
    ((3, 1, 2), 1),
]


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", SOFTMAX_CASES, ids=str)
def test_softmax_matches_torch(shape, dim, log):
    kfn = F.log_softmax if log else F.softmax
    name = "log_softmax" if log else "softmax"
    parity(lambda t: kfn(t, dim), lambda t: getattr(torch_f(), name)(t, dim), rand(shape))


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1e4]], np.float32)
    y = F.softmax(kiln.tensor(x), 1).numpy()
    ly = F.log_softmax(kiln.tensor(x), 1).numpy()
    assert np.isfinite(y).all() and np.isfinite(ly).all()
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(ly), y, rtol=1e-5, atol=1e-30)


def test_softmax_implicit_dim_and_dtype():
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in [(5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)]:
            a = rand(shape)
            want = torch.nn.functional.softmax(torch.tensor(a)).numpy()
            assert rel_err(F.softmax(kiln.tensor(a)).numpy(), want) < 1e-5
    with pytest.warns(UserWarning, match="Implicit dimension"):
        F.log_softmax(kiln.tensor(x))
    y = F.log_softmax(kiln.tensor(x), dim=1, dtype=kiln.float64)
    assert y.dtype == np.float64
    xk = kiln.tensor(x, requires_grad=True)
    F.softmax(xk, 2, dtype=np.float64).sum().backward()
    assert xk.grad.dtype == np.float32


PRELU_CASES = [
    ((4, 3), 3),
    ((4, 3), 1),
    ((2, 5, 7, 6), 5),
    ((2, 5, 7, 6), 1),
    ((1, 3, 4), 3),
    ((6,), 1),
    ((), 1),
]


@pytest.mark.parametrize("shape, channels", PRELU_CASES, ids=str)
def test_prelu_matches_torch(shape, channels):
    w = np.random.default_rng(3).uniform(-0.5, 0.5, channels).astype(np.float32)
    parity(F.prelu, lambda x, w: torch_f().prelu(x, w), rand(shape), w)


def test_prelu_scalar_weight():
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 4))
    w = np.array(0.25, np.float32)
    parity(F.prelu, lambda x, w: torch.nn.functional.prelu(x, w), x, w)


# ------------------------------------------------------------------ gradchecks
def f64(shape: tuple[int, ...], seed: int = 0) -> kiln.Tensor:
    return kiln.tensor(rand(shape, seed, np.float64), requires_grad=True)


@pytest.mark.parametrize(
    "fn",
    [
        F.relu,
        lambda t: F.leaky_relu(t, 0.1),
        lambda t: F.elu(t, 0.7),
        F.selu,
        F.gelu,
        lambda t: F.gelu(t, approximate="tanh"),
        F.sigmoid,
        F.tanh,
        F.hardswish,
        F.silu,
        lambda t: F.softmax(t, 1),
        lambda t: F.softmax(t, -1),
        lambda t: F.log_softmax(t, 0),
        lambda t: F.log_softmax(t, 2),
    ],
)
def test_gradcheck(fn):
    assert gradcheck(fn, [f64((2, 3, 4))])


def test_gradcheck_prelu():
    assert gradcheck(F.prelu, [f64((2, 3, 4)), f64((3,), seed=1)])
    assert gradcheck(F.prelu, [f64((2, 3, 4)), f64((1,), seed=1)])


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", sorted(kiln.kernels.pointwise_ops()))
def test_pointwise_bad_input(name):
    fn = getattr(F, name)
    with pytest.raises(TypeError, match=name):
        fn(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match=name):
        fn(kiln.tensor(np.zeros(3, np.int64)))


def test_softmax_bad_input():
    x = kiln.tensor(rand((2, 3)))
    for fn, name in ((F.softmax, "softmax"), (F.log_softmax, "log_softmax")):
        with pytest.raises(IndexError, match=rf"{name}: dimension 2 .*\(2, 3\)"):
            fn(x, 2)
        with pytest.raises(IndexError, match=rf"{name}: dimension -3 "):
            fn(x, -3)
        with pytest.raises(TypeError, match=name):
            fn(x, 1.0)
        with pytest.raises(TypeError, match=name):
            fn([1.0, 2.0], 0)


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="gelu.*approximate"):
        F.gelu(kiln.tensor(rand((3,))), approximate="fast")


def test_prelu_bad_input():
    x = kiln.tensor(rand((2, 3, 4)))
    with pytest.raises(ValueError, match=r"prelu.*\(2,\).*\(2, 3, 4\)"):
        F.prelu(x, kiln.tensor(np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="prelu"):
        F.prelu(x, kiln.tensor(np.ones((1, 3), np.float32)))
    with pytest.raises(TypeError, match="prelu"):
        F.prelu(x, kiln.tensor(np.ones(3, np.float64)))
    with pytest.raises(TypeError, match="prelu"):
        F.prelu(x, 0.25)


def test_kernels_check_their_arguments():
    k = kiln.kernels
    x = rand((3, 4))
    with pytest.raises(ValueError, match=r"relu_backward.*\(3, 5\).*\(3, 4\)"):
        k.relu_backward(rand((3, 5)), x)
    view = rand((4, 6))[:, ::2]  # not C-contiguous: the binding reads a copy
    np.testing.assert_array_equal(k.sigmoid_forward(view),
                                  k.sigmoid_forward(np.ascontiguousarray(view)))
    with pytest.raises(TypeError, match="tanh_backward.*float32"):
        k.tanh_backward(x, x.astype(np.float64))
    with pytest.raises(ValueError, match="softmax_backward"):
        k.softmax_backward(x, rand((4, 3)), 1)
    with pytest.raises(ValueError, match="prelu_backward"):
        k.prelu_backward(rand((3, 5)), x, np.ones(4, np.float32))
    y = k.softmax_forward(x, -1)
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)


# ------------------------------------------------------------- modules and export
@pytest.mark.parametrize("name", ["Hardswish", "SiLU"])
@pytest.mark.parametrize("inplace", [False, True])
def test_new_modules_match_torch(name, inplace):
    torch = pytest.importorskip("torch")
    km, tm = getattr(kiln.nn, name)(inplace=inplace), getattr(torch.nn, name)(inplace=inplace)
    assert repr(km) == repr(tm)
    x = rand((2, 3, 5), seed=4)
    parity(lambda t: km(t * 1), lambda t: tm(t * 1), x)


@pytest.mark.parametrize("opset", [13, 17])
def test_hardswish_and_silu_export_to_onnx(opset, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = kiln.nn.Sequential(kiln.nn.Hardswish(), kiln.nn.Linear(5, 5), kiln.nn.SiLU())
    x = rand((4, 5), seed=5)
    x[0, :4] = [-3.0, 3.0, -4.0, 4.0]
    path = tmp_path / "m.onnx"
    kiln.onnx.export(model, kiln.tensor(x), path, opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model(kiln.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
