"""Pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d against
PyTorch (forward, indices, input gradient), finite-difference gradchecks in float64, and
bad input; FractionalMaxPool2d against PyTorch's with fixed samples (repr, buffer, output,
indices), its draws from kiln's generator, and its argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import distinct_f64, parity, rand, torch_f, torch_or_skip

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck

# shape, kernel_size, stride, padding, dilation, ceil_mode
MAX_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, False),
    ((1, 4, 13, 11), 3, 2, 1, 1, True),
    ((3, 2, 10, 10), (3, 2), (2, 1), (1, 0), (2, 1), False),
    ((1, 1, 9, 9), 7, 1, 3, 1, False),
    ((2, 2, 7, 7), 7, 3, 2, 1, True),
    ((2, 3, 5, 6), 1, 2, 0, 1, False),
    ((4, 5, 5), 2, 1, 1, 2, True),  # unbatched (C, H, W)
    ((1, 2, 6, 11), (2, 4), (3, 2), (1, 2), (1, 2), True),
    ((1, 1, 4, 4), 3, 3, 1, 1, True),
]


@pytest.mark.parametrize("shape, k, s, p, d, ceil", MAX_CASES)
def test_max_pool2d_matches_torch(shape, k, s, p, d, ceil):
    x = rand(shape)
    parity(lambda t: F.max_pool2d(t, k, s, p, d, ceil, return_indices=True),
           lambda t: torch_f().max_pool2d(
               t, k, s, p, d, ceil, return_indices=True), [x], tol=1e-5)
    parity(lambda t: F.max_pool2d(t, k, s, p, d, ceil),
           lambda t: torch_f().max_pool2d(t, k, s, p, d, ceil),
           [x], tol=1e-5)


@pytest.mark.parametrize("shape, k, s, p, d, ceil", MAX_CASES)
def test_max_pool2d_without_grad_matches_torch(shape, k, s, p, d, ceil):
    torch = torch_or_skip()
    x = rand(shape, 3)
    x[..., 0, :] = np.nan  # the maxima-only kernel keeps PyTorch's NaN rule
    y = F.max_pool2d(kiln.tensor(x), k, s, p, d, ceil)  # no grad: maxima without argmax
    np.testing.assert_array_equal(y.numpy(),
                                  torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d,
                                                                 ceil).numpy())


def test_max_pool2d_nan_and_ties_match_torch():
    torch = torch_or_skip()
    x = np.zeros((1, 2, 6, 6), np.float32)  # all ties: the first position of each window wins
    x[0, 1, 2, 3] = np.nan
    x[0, 1, 1, 1] = -np.inf
    yk, ik = F.max_pool2d(kiln.tensor(x), 3, 2, 1, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ik.numpy(), it.numpy())
    np.testing.assert_array_equal(yk.numpy(), yt.numpy())


@pytest.mark.parametrize("width", [2, 3, 31, 32, 33, 34, 35, 64, 66, 67])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_2x2_rows_of_any_width_match_torch(width, dtype):
    """The 2x2 stride-2 path (vectors of 16 outputs, a masked tail) on rows shorter
    than, equal to and longer than a vector, an odd last column left out; values
    drawn from a few levels so windows tie, with NaN and -inf among them."""
    torch = torch_or_skip()
    rng = np.random.default_rng(width)
    x = rng.integers(-2, 3, (2, 3, 5, width)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    for grad in (False, True):
        xk = kiln.tensor(x, requires_grad=grad)
        xt = torch.tensor(x, requires_grad=grad)
        yk, ik = F.max_pool2d(xk, 2, return_indices=True)
        yt, it = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
        np.testing.assert_array_equal(ik.numpy(), it.numpy())
        np.testing.assert_array_equal(yk.detach().numpy(), yt.detach().numpy())
        if grad:
            g = rng.standard_normal(yt.shape).astype(dtype)
            yk.backward(kiln.tensor(g))
            yt.backward(torch.tensor(g))
            np.testing.assert_array_equal(xk.grad.numpy(), xt.grad.numpy())
    with kiln.no_grad():
        np.testing.assert_array_equal(F.max_pool2d(kiln.tensor(x), 2).numpy(),
                                      torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy())


@pytest.mark.parametrize("k, s, p", [(3, 2, 1), (2, 2, 0), (4, 2, 1)])
def test_max_pool2d_backward_of_half_size_outputs_matches_torch(k, s, p):
    """Outputs half the input's size, as the 2x2 stride-2 backward path expects: its
    argmaxes inside their own 2x2 block or not (3x3 and 4x4 windows reach outside it),
    so the path and the general scatter both run; one shared input keeps maxima in and
    out of the blocks in the same batch."""
    torch = torch_or_skip()
    x = np.random.default_rng(k).standard_normal((2, 3, 8, 36)).astype(np.float32)
    xk, xt = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yk, yt = F.max_pool2d(xk, k, s, p), torch.nn.functional.max_pool2d(xt, k, s, p)
    assert yk.shape == (2, 3, 4, 18)
    g = np.random.default_rng(1).standard_normal(yt.shape).astype(np.float32)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xk.grad.numpy(), xt.grad.numpy(), rtol=0, atol=1e-6)


# shape, kernel_size, stride, padding, ceil_mode
AVG_CASES = [
    ((2, 3, 8, 8), 2, None, 0, False),
    ((2, 3, 9, 7), 3, 2, 1, False),
    ((1, 4, 13, 11), 3, 2, 1, True),
    ((1, 1, 5, 5), 3, 2, 1, True),
    ((3, 2, 10, 9), (3, 2), (2, 1), (1, 0), True),
    ((1, 2, 9, 9), 7, 2, 3, True),
    ((2, 3, 5, 6), 1, 1, 0, False),
    ((4, 5, 6), 2, 2, 1, True),
    ((1, 1, 1, 1), 2, 2, 1, True),  # a ceil_mode window past the padded edge
]


@pytest.mark.parametrize("shape, k, s, p, ceil", AVG_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("divisor_override", [None, 3, -2])
def test_avg_pool2d_matches_torch(shape, k, s, p, ceil, count_include_pad, divisor_override):
    def torch_fn(t):
        return torch_f().avg_pool2d(
            t, k, s, p, ceil, count_include_pad, divisor_override)

    parity(lambda t: F.avg_pool2d(t, k, s, p, ceil, count_include_pad, divisor_override),
           torch_fn, [rand(shape)], tol=1e-5)


@pytest.mark.parametrize("shape, output_size", [
    ((2, 3, 7, 9), 1),
    ((2, 3, 7, 9), (3, 4)),
    ((1, 2, 8, 8), (None, 3)),
    ((2, 2, 5, 7), (5, 7)),
    ((1, 3, 5, 6), (7, 9)),  # larger than the input: windows overlap
    ((3, 10, 10), 4),
])
def test_adaptive_pools_match_torch(shape, output_size):
    torch = torch_or_skip()
    x = rand(shape)
    parity(lambda t: F.adaptive_avg_pool2d(t, output_size),
           lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size), [x], tol=1e-5)
    parity(lambda t: F.adaptive_max_pool2d(t, output_size, return_indices=True),
           lambda t: torch.nn.functional.adaptive_max_pool2d(t, output_size, True), [x],
           tol=1e-5)


def test_adaptive_pool_to_zero_size():
    x = kiln.tensor(rand((2, 3, 6, 6)), requires_grad=True)
    y = F.adaptive_avg_pool2d(x, (0, 2))
    assert y.shape == (2, 3, 0, 2)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3, 6, 6), np.float32))


def test_empty_batch_matches_torch():
    torch = torch_or_skip()
    x = np.zeros((0, 3, 6, 6), np.float32)
    assert F.max_pool2d(kiln.tensor(x), 2).shape == tuple(
        torch.nn.functional.max_pool2d(torch.tensor(x), 2).shape)
    assert F.avg_pool2d(kiln.tensor(x), 3, 2, 1).shape == (0, 3, 3, 3)


def test_float64_and_noncontiguous_input():
    x = rand((2, 3, 6, 8), dtype=np.float64)
    view = kiln.tensor(x.transpose(0, 1, 3, 2).copy()).permute(0, 1, 3, 2)  # strided view
    assert not view.numpy().flags.c_contiguous
    np.testing.assert_array_equal(F.max_pool2d(view, 2).numpy(),
                                  F.max_pool2d(kiln.tensor(x), 2).numpy())
    assert F.avg_pool2d(view, 2).dtype == np.float64


def test_thread_count_does_not_change_results():
    x = kiln.tensor(rand((8, 16, 17, 17)))
    before = kiln.get_num_threads()
    try:
        kiln.set_num_threads(1)
        one = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        kiln.set_num_threads(2)
        two = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    finally:
        kiln.set_num_threads(before)
    np.testing.assert_array_equal(one[0].numpy(), two[0].numpy())
    np.testing.assert_array_equal(one[1].numpy(), two[1].numpy())


# ---------------------------------------------------------------- gradchecks (no torch)
@pytest.mark.parametrize("fn", [
    lambda x: F.max_pool2d(x, 3, 2, 1),
    lambda x: F.max_pool2d(x, (2, 3), 1, (1, 0), (2, 1), ceil_mode=True),
    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda x: F.avg_pool2d(x, 2, divisor_override=3),
    lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
    lambda x: F.adaptive_max_pool2d(x, (2, 3)),
    lambda x: F.adaptive_avg_pool2d(x, 1),
])
def test_gradcheck(fn):
    assert gradcheck(fn, [distinct_f64((2, 2, 5, 6))])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.max_pool2d(x[0, 0], 2), ValueError, r"max_pool2d: .*\(5, 6\)"),
    (lambda x: F.max_pool2d(x.reshape(1, 2, 2, 5, 6), 2), ValueError, "max_pool2d"),
    (lambda x: F.max_pool2d(x, 7), ValueError, r"max_pool2d: input \(2, 2, 5, 6\) is too small"),
    (lambda x: F.max_pool2d(x, 3, padding=2), ValueError, "max_pool2d: padding .* half"),
    (lambda x: F.max_pool2d(x, 0), ValueError, "max_pool2d: kernel_size must be positive"),
    (lambda x: F.max_pool2d(x, 2, -1), ValueError, "max_pool2d: stride must be positive"),
    (lambda x: F.max_pool2d(x, 2, padding=-1), ValueError, "max_pool2d: padding"),
    (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError, "max_pool2d: dilation"),
    (lambda x: F.max_pool2d(x, 2.0), TypeError, "max_pool2d: kernel_size"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), TypeError, "max_pool2d: kernel_size"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode="yes"), TypeError, "max_pool2d: ceil_mode"),
    (lambda x: F.max_pool2d(x.numpy(), 2), TypeError, "max_pool2d: input must be a kiln.Tensor"),
    (lambda x: F.max_pool2d(kiln.tensor(np.ones((1, 1, 4, 4), np.int64)), 2), TypeError,
     r"max_pool2d: .*int64"),
    (lambda x: F.max_pool2d(kiln.zeros(1, 0, 4, 4), 2), ValueError, r"\(1, 0, 4, 4\)"),
    (lambda x: F.avg_pool2d(x, 3, padding=2), ValueError, "avg_pool2d: padding"),
    (lambda x: F.avg_pool2d(x, 8), ValueError, "avg_pool2d: input .* too small"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, "avg_pool2d: divisor"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=1.5), TypeError, "divisor_override"),
    (lambda x: F.avg_pool2d(kiln.tensor(np.ones((1, 1, 4, 4), np.float16)), 2), TypeError,
     "avg_pool2d: .*float16"),
    (lambda x: F.adaptive_avg_pool2d(x, -1), ValueError, "adaptive_avg_pool2d: output_size"),
    (lambda x: F.adaptive_avg_pool2d(x, (2, 2, 2)), TypeError, "adaptive_avg_pool2d"),
    (lambda x: F.adaptive_avg_pool2d(x, [3]), TypeError, "adaptive_avg_pool2d"),
    (lambda x: F.adaptive_avg_pool2d(x[0, 0], 2), ValueError, "adaptive_avg_pool2d"),
    (lambda x: F.adaptive_avg_pool2d(kiln.zeros(1, 2, 0, 4), 2), ValueError,
     r"adaptive_avg_pool2d: .*\(1, 2, 0, 4\)"),
    (lambda x: F.adaptive_max_pool2d(x, None), TypeError, "adaptive_max_pool2d: output_size"),
])
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call(kiln.tensor(rand((2, 2, 5, 6))))


def test_kernels_check_their_arguments():
    k = kiln.kernels
    x = rand((1, 2, 4, 4))
    y, ind = k.max_pool2d_forward(x, 2)
    assert "indices" in k.max_pool2d_forward.__doc__
    with pytest.raises(ValueError, match="max_pool2d_backward: index 16"):
        k.max_pool2d_backward(y, np.full(ind.shape, 16, np.int64), x.shape)
    with pytest.raises(ValueError, match="max_pool2d_backward: indices"):
        k.max_pool2d_backward(y, ind[:, :1], x.shape)
    with pytest.raises(TypeError, match="max_pool2d_backward: expected indices of dtype int64"):
        k.max_pool2d_backward(y, ind.astype(np.int32), x.shape)
    with pytest.raises(ValueError, match="max_pool2d_backward: grad_output"):
        k.max_pool2d_backward(y[:, :1], ind[:, :1], x.shape)
    view = np.asfortranarray(rand((1, 2, 4, 4)))[..., ::2]  # the binding reads a copy
    for got, want in zip(k.max_pool2d_forward(view, 2),
                         k.max_pool2d_forward(np.ascontiguousarray(view), 2)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="avg_pool2d_backward: expected grad_output of shape"):
        k.avg_pool2d_backward(y[:, :1].copy(), x.shape, 2)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_backward"):
        k.adaptive_avg_pool2d_backward(y, (1, 3, 4, 4))
    with pytest.raises(ValueError, match="max_pool2d: kernel_size .* out of range"):
        k.max_pool2d_forward(x, 2**40)
    np.testing.assert_array_equal(k.adaptive_avg_pool2d_backward(y, x.shape).shape, x.shape)


# ---------------------------------------------------------------- fractional max pooling
def test_fractional_max_pool_module_matches_torch():
    torch = torch_or_skip()
    x = distinct_f64((2, 3, 11, 9)).detach().numpy().astype(np.float32)
    samples = np.random.default_rng(1).random((2, 3, 2)).astype(np.float32)
    for kwargs in ({"output_size": (5, 4)}, {"output_ratio": (0.5, 0.6)},
                   {"output_size": 4, "return_indices": True}):
        ours = kiln.nn.FractionalMaxPool2d(3, **kwargs, _random_samples=kiln.tensor(samples))
        theirs = torch.nn.FractionalMaxPool2d(3, **kwargs,
                                              _random_samples=torch.tensor(samples))
        assert repr(ours) == repr(theirs) == "FractionalMaxPool2d()"
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["_random_samples"]
        assert (ours.kernel_size, ours.output_size, ours.output_ratio) == (
            theirs.kernel_size, theirs.output_size, theirs.output_ratio)
        got, want = ours(kiln.tensor(x)), theirs(torch.tensor(x))
        for a, b in zip(got if isinstance(got, tuple) else [got],
                        want if isinstance(want, tuple) else [want]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert list(kiln.nn.FractionalMaxPool2d(2, output_ratio=0.5).state_dict()) == []


def test_fractional_max_pool_draws_from_kilns_generator():
    x = distinct_f64((2, 4, 12, 12)).detach()
    kiln.manual_seed(3)
    first, first_ind = F.fractional_max_pool2d(x, 2, 5, return_indices=True)
    kiln.manual_seed(3)
    again, again_ind = F.fractional_max_pool2d(x, 2, 5, return_indices=True)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    np.testing.assert_array_equal(first_ind.numpy(), again_ind.numpy())
    # The next draw places the windows elsewhere (10 start positions for 5 windows).
    _, other_ind = F.fractional_max_pool2d(x, 2, 5, return_indices=True)
    assert not np.array_equal(first_ind.numpy(), other_ind.numpy())
    # Each output is the max of a 2x2 window holding its index (windows overlap or touch).
    flat = x.numpy().reshape(8, 144)
    ind = first_ind.numpy().reshape(8, 25)
    np.testing.assert_array_equal(first.numpy().reshape(8, 25),
                                  np.take_along_axis(flat, ind, axis=1))
    rows = ind // 12
    assert (np.diff(rows.reshape(8, 5, 5)[:, :, 0], axis=1) >= 0).all()


def test_fractional_max_pool_scalar_ratio_and_gradcheck():
    x = distinct_f64((1, 2, 8, 10)).detach()
    u = kiln.tensor(np.random.default_rng(2).random((1, 2, 2)))
    np.testing.assert_array_equal(
        F.fractional_max_pool2d(x, 2, output_ratio=0.5, _random_samples=u).numpy(),
        F.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.5), _random_samples=u).numpy())
    assert gradcheck(lambda t: F.fractional_max_pool2d(t, (2, 3), (4, 3), _random_samples=u),
                     [distinct_f64((1, 2, 7, 6))])


@pytest.mark.parametrize("make, error, match", [
    (lambda: kiln.nn.FractionalMaxPool2d(2), ValueError, "requires specifying either"),
    (lambda: kiln.nn.FractionalMaxPool2d(2, 3, 0.5), ValueError, "only one of"),
    (lambda: kiln.nn.FractionalMaxPool2d(2, output_ratio=1.0), ValueError,
     r"output_ratio must be between 0 and 1 \(got 1.0\)"),
    (lambda: kiln.nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0)), ValueError,
     "output_ratio must be between 0 and 1"),
    (lambda: kiln.nn.FractionalMaxPool2d(0, 3), ValueError, "kernel_size must be positive"),
    (lambda: kiln.nn.FractionalMaxPool2d(2, output_ratio="half"), TypeError, "output_ratio"),
])
def test_fractional_max_pool_module_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()
