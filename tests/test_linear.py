"""linear and matmul against PyTorch (forward, gradients of every operand), float64
gradchecks, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import f64, parity, rand, rel_err, torch_f, torch_or_skip

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck

# input shape, out_features, bias
LINEAR_CASES = [
    ((5, 7), 3, True),
    ((5, 7), 3, False),
    ((1, 1), 1, True),
    ((7,), 4, True),
    ((2, 3, 6), 5, True),
    ((2, 3, 4, 6), 1, False),
    ((64, 129), 65, True),
    ((0, 4), 3, True),
    ((3, 0), 2, True),
    ((300, 257), 130, True),  # large enough for the threaded gemm
]


@pytest.mark.parametrize("shape, out, bias", LINEAR_CASES, ids=str)
def test_linear_matches_torch(shape, out, bias):
    w = rand((out, shape[-1]), 1)
    b = rand((out,), 2) if bias else None
    parity(F.linear, torch_f().linear, [rand(shape), w, b])


def test_linear_partial_gradients():
    x = kiln.tensor(rand((4, 3)))
    w = kiln.tensor(rand((2, 3), 1), requires_grad=True)
    b = kiln.tensor(rand((2,), 2))
    F.linear(x, w, b).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-5)
    assert x.grad is None and b.grad is None


def test_linear_non_contiguous_input():
    torch = torch_or_skip()
    x = rand((6, 8))
    w = rand((8, 5), 1)  # used transposed: a non-contiguous (5, 8) view
    yk = F.linear(kiln.tensor(x)[:, ::2], kiln.tensor(w).t()[:, :4])
    yt = torch.nn.functional.linear(torch.tensor(x)[:, ::2], torch.tensor(w).t()[:, :4])
    assert rel_err(yk.numpy(), yt.numpy()) < 1e-5


MATMUL_CASES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((4,), (4,)),
    ((4,), (4, 3)),
    ((3, 4), (4,)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),  # folds into one gemm
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 4), (6, 4, 2)),
    ((3, 1, 2, 4), (1, 2, 4, 3)),
    ((0, 3, 4), (4, 2)),
    ((2, 3, 0), (2, 0, 5)),
    ((200, 130), (130, 170)),
    ((3, 90, 80), (3, 80, 100)),
]


@pytest.mark.parametrize("a, b", MATMUL_CASES, ids=str)
def test_matmul_matches_torch(a, b):
    torch = torch_or_skip()
    parity(F.matmul, torch.matmul, [rand(a), rand(b, 1)])


def test_matmul_operator_and_float64():
    torch = torch_or_skip()
    a, b = rand((2, 3, 4), dtype=np.float64), rand((4, 2), 1, np.float64)
    y = kiln.tensor(a) @ kiln.tensor(b)
    assert y.dtype == np.float64
    assert rel_err(y.numpy(), (torch.tensor(a) @ torch.tensor(b)).numpy()) < 1e-12


def test_matmul_integers():
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(2, 3, 2)
    y = F.matmul(kiln.tensor(a), kiln.tensor(b))
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y.numpy(), a @ b)
    with pytest.raises(ValueError, match="matmul"):
        F.matmul(kiln.tensor(a), kiln.tensor(a))
    with pytest.raises(TypeError, match="matmul.*dtype"):
        F.matmul(kiln.tensor(a), kiln.tensor(b.astype(np.float32)))


def test_kernels_match_numpy():
    k = kiln.kernels
    a, b = rand((2, 3, 4)), rand((4, 5), 1)
    np.testing.assert_allclose(k.matmul_forward(a, b), a @ b, rtol=1e-5, atol=1e-6)
    x, w, bias = rand((6, 4)), rand((3, 4), 1), rand((3,), 2)
    np.testing.assert_allclose(k.linear_forward(x, w, bias), x @ w.T + bias, rtol=1e-5, atol=1e-6)
    gx, gw, gb = k.linear_backward(np.ones((6, 3), np.float32), x, w, input_grad=False)
    assert gx is None and gw.shape == (3, 4) and gb.shape == (3,)


# ------------------------------------------------------------------ gradchecks
def test_gradcheck_linear():
    assert gradcheck(F.linear, [f64((2, 3, 4)), f64((5, 4), 1), f64((5,), 2)])
    assert gradcheck(F.linear, [f64((4,)), f64((2, 4), 1)])


@pytest.mark.parametrize(
    "a, b", [((3, 4), (4, 2)), ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)), ((2, 1, 3), (3,))]
)
def test_gradcheck_matmul(a, b):
    assert gradcheck(F.matmul, [f64(a), f64(b, 1)])


# ------------------------------------------------------------------- bad input
def test_linear_bad_input():
    x = kiln.tensor(rand((3, 4)))
    with pytest.raises(ValueError, match=r"linear.*\(3, 4\).*4 features.*\(5, 3\).*3"):
        F.linear(x, kiln.tensor(rand((5, 3))))
    with pytest.raises(ValueError, match=r"linear.*bias.*\(4,\).*expected \(5,\)"):
        F.linear(x, kiln.tensor(rand((5, 4))), kiln.tensor(rand((4,))))
    with pytest.raises(ValueError, match="linear.*weight.*2-D"):
        F.linear(x, kiln.tensor(rand((4,))))
    with pytest.raises(ValueError, match="linear.*at least 1 dimension"):
        F.linear(kiln.tensor(rand(())), kiln.tensor(rand((5, 4))))
    with pytest.raises(TypeError, match="linear.*dtype"):
        F.linear(x, kiln.tensor(rand((5, 4), dtype=np.float64)))
    with pytest.raises(TypeError, match="linear.*int64"):
        F.linear(kiln.tensor(np.zeros((3, 4), np.int64)), kiln.tensor(rand((5, 4))))
    with pytest.raises(TypeError, match="linear"):
        F.linear(x, rand((5, 4)))


def test_matmul_bad_input():
    a = kiln.tensor(rand((3, 4)))
    with pytest.raises(RuntimeError, match=r"matmul: mat1 and mat2 shapes cannot be multiplied "
                                           r"\(3x4 and 5x6\)"):
        F.matmul(a, kiln.tensor(rand((5, 6))))
    with pytest.raises(RuntimeError, match=r"matmul.*batch.*\(2,\).*\(3,\)"):
        F.matmul(kiln.tensor(rand((2, 3, 4))), kiln.tensor(rand((3, 4, 5))))
    with pytest.raises(RuntimeError, match="matmul.*at least 1D"):
        F.matmul(kiln.tensor(rand(())), a)
    with pytest.raises(TypeError, match="matmul.*dtype"):
        F.matmul(a, kiln.tensor(rand((4, 2), dtype=np.float64)))
    with pytest.raises(TypeError, match="matmul"):
        F.matmul(a, 2.0)
    with pytest.raises(ValueError, match=r"matmul_backward.*grad_output.*\(3, 3\)"):
        kiln.kernels.matmul_backward(rand((3, 3)), rand((3, 4)), rand((4, 2)))
    view = rand((4, 6))[:, ::2]  # not C-contiguous: the binding reads a copy
    np.testing.assert_array_equal(kiln.kernels.matmul_forward(view, rand((3, 2))),
                                  kiln.kernels.matmul_forward(np.ascontiguousarray(view),
                                                              rand((3, 2))))
