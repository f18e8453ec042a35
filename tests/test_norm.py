"""batch_norm and group_norm against PyTorch (outputs, batch norm's running statistics over
several steps, gradients of input, weight and bias), float64 gradchecks, bad input, the
GroupNorm layer, group_norm's thread-count determinism and ONNX export; the LayerNorm,
InstanceNorm1d/2d and LocalResponseNorm layers against PyTorch's (reprs, state-dict keys,
running statistics over steps, input checks and warnings) and their gradchecks. The
functional forms' parity over many shapes is in tests/op_table.py."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.autograd import gradcheck


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6)) if b.size else 0.0


def rand(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0, shift: float = 0.0,
         dtype: type = np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


SHAPES = [(8, 5), (2, 3), (4, 3, 7), (1, 4, 9), (3, 4, 5, 6), (1, 2, 3, 3), (16, 8, 7, 7),
          (2, 3, 2, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(shape, training, affine):
    torch = pytest.importorskip("torch")
    c = shape[1]
    w, b = rand((c,), 1), rand((c,), 2)
    rm, rv = rand((c,), 3), np.abs(rand((c,), 4)) + 0.5
    k_rm, k_rv = kiln.tensor(rm.copy()), kiln.tensor(rv.copy())
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    k_w = kiln.tensor(w, requires_grad=True) if affine else None
    k_b = kiln.tensor(b, requires_grad=True) if affine else None
    t_w = torch.tensor(w, requires_grad=True) if affine else None
    t_b = torch.tensor(b, requires_grad=True) if affine else None
    for step in range(3):  # the running statistics accumulate over steps
        x = rand(shape, 10 + step, scale=2.0, shift=step - 1.0)
        g = rand(shape, 20 + step)
        xk = kiln.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        yk = F.batch_norm(xk, k_rm, k_rv, k_w, k_b, training, 0.3, 1e-4)
        yt = torch.nn.functional.batch_norm(xt, t_rm, t_rv, t_w, t_b, training, 0.3, 1e-4)
        assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-4
        assert rel_err(k_rm.numpy(), t_rm.numpy()) < 1e-5
        assert rel_err(k_rv.numpy(), t_rv.numpy()) < 1e-5
        yk.backward(kiln.tensor(g))
        yt.backward(torch.tensor(g))
        # dx cancels to far below dy * weight * invstd for tiny batches: measure the error
        # against that natural scale, not against dx alone.
        axes = (0,) + tuple(range(2, len(shape)))
        var = x.astype(np.float64).var(axes) if training else t_rv.numpy()
        scale = np.abs(g).max() * (np.abs(w).max() if affine else 1) / np.sqrt(var.min() + 1e-4)
        dx_t = xt.grad.numpy()
        assert np.abs(xk.grad.numpy() - dx_t).max() <= 1e-4 * max(np.abs(dx_t).max(), 1e-2 * scale)
        if affine:
            assert rel_err(k_w.grad.numpy(), t_w.grad.numpy()) < 1e-4
            assert rel_err(k_b.grad.numpy(), t_b.grad.numpy()) < 1e-4


@pytest.mark.parametrize("momentum", [0.0, 0.1, 1.0])
def test_running_stats_update_in_place(momentum):
    torch = pytest.importorskip("torch")
    x = rand((6, 3, 4, 4), 5, scale=3.0, shift=2.0)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    k_rm, k_rv = kiln.from_numpy(rm), kiln.from_numpy(rv)  # share rm, rv
    t_rm, t_rv = torch.zeros(3), torch.ones(3)
    F.batch_norm(kiln.tensor(x), k_rm, k_rv, training=True, momentum=momentum)
    torch.nn.functional.batch_norm(torch.tensor(x), t_rm, t_rv, training=True, momentum=momentum)
    assert k_rm.numpy() is rm
    np.testing.assert_allclose(rm, t_rm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, t_rv.numpy(), rtol=1e-5, atol=1e-6)


def test_training_without_running_stats_and_large_mean():
    torch = pytest.importorskip("torch")
    # A mean far from zero relative to the spread stresses the variance computation.
    x = rand((32, 4, 8, 8), 6, scale=0.01, shift=1000.0)
    g = rand(x.shape, 7)
    xk = kiln.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    yk = F.batch_norm(xk, None, None, training=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, training=True)
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-2  # float32 input quantization
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    # Reference in float64 from the same float32 input: kiln is the more exact of the two.
    x64 = x.astype(np.float64)
    mean, var = x64.mean((0, 2, 3), keepdims=True), x64.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(yk.detach().numpy(), (x64 - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-3, atol=1e-3)


def test_empty_batch_in_training_leaves_running_stats():
    rm, rv = kiln.zeros(3), kiln.ones(3)
    y = F.batch_norm(kiln.zeros(0, 3), rm, rv, training=True)
    assert y.shape == (0, 3)
    assert rm.numpy().tolist() == [0, 0, 0] and rv.numpy().tolist() == [1, 1, 1]


# ---------------------------------------------------------------- gradchecks (no torch)
def f64(shape: tuple[int, ...], seed: int) -> kiln.Tensor:
    return kiln.tensor(rand(shape, seed, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 3, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(shape, training):
    c = shape[1]
    rm = kiln.tensor(rand((c,), 1, dtype=np.float64))
    rv = kiln.tensor(np.abs(rand((c,), 2, dtype=np.float64)) + 0.5)
    x, w, b = f64(shape, 3), f64((c,), 4), f64((c,), 5)
    # running statistics stay fixed in eval; in training pass None so repeated calls agree
    stats = (None, None) if training else (rm, rv)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, *stats, w, b, training), [x, w, b])
    assert gradcheck(lambda x: F.batch_norm(x, *stats, None, None, training, eps=1e-3), [x])


# ---------------------------------------------------------------- bad input
def bn(x=None, rm="default", rv="default", w=None, b=None, training=True, **kw):
    x = kiln.tensor(rand((4, 3, 5))) if x is None else x
    rm = kiln.zeros(3) if isinstance(rm, str) else rm
    rv = kiln.ones(3) if isinstance(rv, str) else rv
    return F.batch_norm(x, rm, rv, w, b, training, **kw)


@pytest.mark.parametrize("call, error, match", [
    (lambda: bn(kiln.zeros(5)), ValueError, r"batch_norm: .*\(5,\)"),
    (lambda: bn(rm=kiln.zeros(4)), ValueError,
     r"batch_norm: expected running_mean of shape \(3,\) for input \(4, 3, 5\), got \(4,\)"),
    (lambda: bn(rv=kiln.ones(1, 3)), ValueError, r"batch_norm: .*running_var.*\(1, 3\)"),
    (lambda: bn(w=kiln.ones(4)), ValueError, r"batch_norm: expected weight of shape \(3,\)"),
    (lambda: bn(b=kiln.ones(2)), ValueError, r"batch_norm: expected bias of shape \(3,\)"),
    (lambda: bn(kiln.zeros(1, 3)), ValueError,
     r"batch_norm: expected more than 1 value per channel when training, got input size \(1, 3\)"),
    (lambda: bn(kiln.zeros(1, 3, 1, 1)), ValueError, "more than 1 value per channel"),
    (lambda: bn(rm=None, rv=None, training=False), ValueError,
     "batch_norm: running_mean and running_var are required in eval mode"),
    (lambda: bn(rm=None), ValueError, "batch_norm: running_mean and running_var must either"),
    (lambda: bn(rm=kiln.zeros(3, dtype=kiln.float64)), TypeError,
     "batch_norm: expected running_mean of dtype float32, got float64"),
    (lambda: bn(kiln.tensor(np.ones((4, 3), np.int64))), TypeError, r"batch_norm: .*int64"),
    (lambda: bn(np.zeros((4, 3), np.float32)), TypeError,
     "batch_norm: input must be a kiln.Tensor"),
    (lambda: bn(rm=np.zeros(3, np.float32)), TypeError, "batch_norm: running_mean must be"),
    (lambda: bn(eps=0.0), ValueError, "batch_norm: eps must be positive"),
    (lambda: bn(momentum=None), TypeError, "batch_norm: momentum must be a float"),
])
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_eval_with_one_value_per_channel_is_allowed():
    y = bn(kiln.ones(1, 3), training=False)
    np.testing.assert_allclose(y.numpy(), np.full((1, 3), 1 / np.sqrt(1 + 1e-5)), rtol=1e-6)


def test_kernels_check_their_arguments():
    k = kiln.kernels
    x = rand((4, 3, 5))
    y, mean, invstd = k.batch_norm_forward(x, None, None, training=True)
    assert "save_invstd" in k.batch_norm_forward.__doc__
    gx, gw, gb = k.batch_norm_backward(y, x, None, mean, invstd, True)
    assert gx.shape == x.shape and gw.shape == gb.shape == (3,)
    with pytest.raises(ValueError, match="batch_norm_backward: grad_output"):
        k.batch_norm_backward(y[:2].copy(), x, None, mean, invstd, True)
    with pytest.raises(ValueError, match="batch_norm_backward: expected save_mean of shape"):
        k.batch_norm_backward(y, x, None, mean[:2].copy(), invstd, True)
    read_only = np.zeros(3, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="batch_norm: running_mean is read-only"):
        k.batch_norm_forward(x, read_only, np.ones(3, np.float32), training=True)


# ================================================================ group_norm
# (shape, num_groups): 2-D to 5-D, batch 1, one group, one channel per group, groups
# of one value (y = bias), no trailing dimensions, an empty batch.
GN_CASES = [((6, 4), 2), ((4, 5), 5), ((3, 6, 7), 3), ((1, 4, 9), 2), ((2, 4, 5, 6), 2),
            ((1, 6, 3, 3), 3), ((2, 6, 3, 3), 1), ((2, 6, 3, 3), 6), ((8, 32, 7, 7), 8),
            ((2, 4, 2, 3, 2), 2), ((0, 4, 3), 2)]


def gn_pair(torch, shape, dtype, affine, seed=0, noncontiguous=False):
    """Equal kiln and torch inputs (x leaf, x view, weight, bias), requiring grad, and x
    as a NumPy array."""
    c = shape[1]
    if noncontiguous:  # x is a permuted view of a (N, *, C) leaf
        base = np.moveaxis(rand(shape, seed, 2.0, 0.5, dtype), 1, -1).copy()
        to_nc = (0, len(shape) - 1, *range(1, len(shape) - 1))
        x_np = base.transpose(to_nc)
        xk = kiln.tensor(base, requires_grad=True)
        xt = torch.tensor(base, requires_grad=True)
        xk_view, xt_view = xk.permute(to_nc), xt.permute(to_nc)
        assert not xk_view.is_contiguous()
    else:
        x_np = rand(shape, seed, 2.0, 0.5, dtype)
        xk = xk_view = kiln.tensor(x_np, requires_grad=True)
        xt = xt_view = torch.tensor(x_np, requires_grad=True)
    params_k = params_t = (None, None)
    if affine:
        w, b = rand((c,), seed + 1, dtype=dtype), rand((c,), seed + 2, dtype=dtype)
        params_k = (kiln.tensor(w, requires_grad=True), kiln.tensor(b, requires_grad=True))
        params_t = (torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True))
    return (xk, xk_view, *params_k), (xt, xt_view, *params_t), x_np


@pytest.mark.parametrize("shape, groups", GN_CASES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_matches_torch(shape, groups, affine, dtype):
    torch = pytest.importorskip("torch")
    (xk, _, wk, bk), (xt, _, wt, bt), x = gn_pair(torch, shape, dtype, affine)
    eps = 1e-4
    yk = F.group_norm(xk, groups, wk, bk, eps)
    yt = torch.nn.functional.group_norm(xt, groups, wt, bt, eps)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert yk.dtype == kiln.tensor(x).dtype and yk.shape == tuple(shape)
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < tol
    g = rand(shape, 9, dtype=dtype)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    # dx cancels to far below dy * weight * rstd for groups of a few values: measure the
    # error against that natural scale.
    rstd = 1 / np.sqrt(x.reshape(shape[0], groups, -1).var(-1).min() + eps) if x.size else 1
    w_max = np.abs(wt.detach().numpy()).max() if affine else 1
    scale = np.abs(g).max(initial=0) * w_max * rstd
    dx_t = xt.grad.numpy()
    assert np.abs(xk.grad.numpy() - dx_t).max(initial=0) <= tol * max(
        np.abs(dx_t).max(initial=0), 1e-2 * scale)
    if affine:  # groups of one value: xhat and dweight are 0, torch's within rounding
        for ours, theirs in ((wk.grad.numpy(), wt.grad.numpy()),
                             (bk.grad.numpy(), bt.grad.numpy())):
            assert np.abs(ours - theirs).max() <= tol * max(np.abs(theirs).max(), 1.0)


@pytest.mark.parametrize("shape, groups", [((4, 6, 5), 3), ((2, 8, 3, 4), 4)])
def test_group_norm_non_contiguous_input(shape, groups):
    torch = pytest.importorskip("torch")
    (xk, xk_view, wk, bk), (xt, xt_view, wt, bt), _ = gn_pair(torch, shape, np.float32, True,
                                                               noncontiguous=True)
    yk = F.group_norm(xk_view, groups, wk, bk)
    yt = torch.nn.functional.group_norm(xt_view, groups, wt, bt)
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-5
    g = rand(shape, 9)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    assert rel_err(xk.grad.numpy(), xt.grad.numpy()) < 1e-4  # the (N, *, C) leaf's layout
    assert rel_err(wk.grad.numpy(), wt.grad.numpy()) < 1e-5


def test_group_norm_empty_groups_give_zero_parameter_gradients():
    # Sums over no values are 0 (PyTorch returns NaN here: its mean of no values).
    x = kiln.zeros(2, 4, 0, requires_grad=True)
    w, b = kiln.ones(4, requires_grad=True), kiln.zeros(4, requires_grad=True)
    y = F.group_norm(x, 2, w, b)
    y.backward(kiln.zeros(2, 4, 0))
    assert y.shape == x.grad.shape == (2, 4, 0)
    assert w.grad.numpy().tolist() == b.grad.numpy().tolist() == [0, 0, 0, 0]


def test_group_norm_large_mean():
    # A mean far from zero relative to the spread: a one-pass E[x^2] - E[x]^2 would lose it.
    x = rand((4, 6, 8, 8), 6, scale=0.01, shift=1000.0)
    y = F.group_norm(kiln.tensor(x), 3).numpy()
    groups = x.astype(np.float64).reshape(4, 3, -1)
    want = (groups - groups.mean(-1, keepdims=True)) / np.sqrt(groups.var(-1, keepdims=True)
                                                               + 1e-5)
    np.testing.assert_allclose(y, want.reshape(x.shape), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape, groups", [((3, 4), 2), ((2, 6, 3), 3), ((2, 4, 3, 2), 2),
                                           ((1, 3, 5), 1), ((2, 3, 2, 2), 3)])
def test_group_norm_gradcheck(shape, groups):
    c = shape[1]
    x, w, b = f64(shape, 3), f64((c,), 4), f64((c,), 5)
    assert gradcheck(lambda x, w, b: F.group_norm(x, groups, w, b, 1e-3), [x, w, b])
    assert gradcheck(lambda x: F.group_norm(x, groups, eps=1e-3), [x])
    assert gradcheck(lambda w: F.group_norm(x.detach(), groups, w, None, 1e-3), [w])


def test_group_norm_kernels_compute_only_the_gradients_asked_for():
    k = kiln.kernels
    x, w = rand((4, 6, 5)), rand((6,), 1)
    y, mean, rstd = k.group_norm_forward(x, 3, w, None)
    assert mean.shape == rstd.shape == (4, 3) and "rstd" in k.group_norm_forward.__doc__
    dy = rand(x.shape, 2)
    dx, dw, db = k.group_norm_backward(dy, x, w, mean, rstd, 3)
    assert dx.shape == x.shape and dw.shape == db.shape == (6,)
    only_dw = k.group_norm_backward(dy, x, w, mean, rstd, 3, input_grad=False, bias_grad=False)
    assert only_dw[0] is None and only_dw[2] is None
    np.testing.assert_array_equal(only_dw[1], dw)
    only_dx = k.group_norm_backward(dy, x, w, mean, rstd, 3, True, False, False)
    np.testing.assert_array_equal(only_dx[0], dx)
    with pytest.raises(ValueError, match=r"group_norm_backward: expected mean of shape \(4, 3\), "
                       r"got \(4, 2\)"):
        k.group_norm_backward(dy, x, w, mean[:, :2].copy(), rstd, 3)
    with pytest.raises(ValueError, match=r"group_norm_backward: grad_output \(4, 6, 4\)"):
        k.group_norm_backward(dy[..., :4].copy(), x, w, mean, rstd, 3)


def test_group_norm_without_weight_skips_parameter_gradients():
    x = kiln.tensor(rand((2, 4, 3)), requires_grad=True)
    b = kiln.zeros(4, requires_grad=True)
    F.group_norm(x, 2, None, b).sum().backward()
    assert x.grad.shape == (2, 4, 3)
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 6, np.float32))


def gn(x=None, groups=2, w=None, b=None, **kw):
    x = kiln.tensor(rand((2, 6, 5))) if x is None else x
    return F.group_norm(x, groups, w, b, **kw)


@pytest.mark.parametrize("call, error, match", [
    (lambda: gn(kiln.zeros(6)), ValueError,
     r"group_norm: expected input of shape \(N, C, \*\) with at least 2 dimensions, got \(6,\)"),
    (lambda: gn(groups=4), ValueError,
     r"group_norm: expected the number of channels in input to be divisible by num_groups, "
     r"but got input of shape \(2, 6, 5\) and num_groups=4"),
    (lambda: gn(groups=0), ValueError, "group_norm: num_groups must be positive, got 0"),
    (lambda: gn(groups=-2), ValueError, "group_norm: num_groups must be positive, got -2"),
    (lambda: gn(groups=2.0), TypeError, "group_norm: num_groups must be an int, got float"),
    (lambda: gn(groups=True), TypeError, "group_norm: num_groups must be an int, got bool"),
    (lambda: gn(w=kiln.ones(4)), ValueError,
     r"group_norm: expected weight of shape \(6,\) for input \(2, 6, 5\), got \(4,\)"),
    (lambda: gn(b=kiln.ones(1, 6)), ValueError,
     r"group_norm: expected bias of shape \(6,\) for input \(2, 6, 5\), got \(1, 6\)"),
    (lambda: gn(w=kiln.ones(6, dtype=kiln.float64)), TypeError,
     r"group_norm: expected weight of dtype float32, got float64 with shape \(6,\)"),
    (lambda: gn(kiln.tensor(np.ones((2, 6), np.int64))), TypeError,
     r"group_norm: expected input of dtype float32 or float64, got int64 with shape \(2, 6\)"),
    (lambda: gn(np.zeros((2, 6), np.float32)), TypeError,
     "group_norm: input must be a kiln.Tensor, got ndarray"),
    (lambda: gn(w=np.ones(6, np.float32)), TypeError, "group_norm: weight must be a kiln.Tensor"),
    (lambda: gn(eps=0.0), ValueError, "group_norm: eps must be positive, got 0"),
    (lambda: gn(eps=-1e-5), ValueError, "group_norm: eps must be positive"),
    (lambda: gn(eps=float("nan")), ValueError, "group_norm: eps must be positive, got nan"),
    (lambda: gn(eps=None), TypeError, "group_norm: eps must be a float, got NoneType"),
    (lambda: gn(kiln.zeros(1, 3), groups=3), ValueError,
     r"group_norm: expected more than 1 value per group, got input of shape \(1, 3\) with "
     r"num_groups=3"),
    (lambda: gn(kiln.zeros(1, 4, 1, 1), groups=4), ValueError, "more than 1 value per group"),
])
def test_group_norm_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_group_norm_groups_of_one_value_give_bias():
    # Allowed as in PyTorch when the batch has more than one sample.
    b = kiln.tensor(np.array([1.0, -2.0, 3.0], np.float32))
    y = F.group_norm(kiln.tensor(rand((2, 3))), 3, None, b)
    np.testing.assert_array_equal(y.numpy(), np.tile(b.numpy(), (2, 1)))


# ---------------------------------------------------------------- GroupNorm layer
def test_group_norm_module_state_dict_and_repr():
    torch = pytest.importorskip("torch")
    for args, kwargs in (((2, 4), {}), ((3, 6), {"eps": 1e-3, "affine": False}),
                         ((1, 5), {"bias": False}), ((3, 3), {"affine": False, "bias": False})):
        ours, theirs = nn.GroupNorm(*args, **kwargs), torch.nn.GroupNorm(*args, **kwargs)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())
    assert repr(nn.GroupNorm(2, 4)) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"
    double = nn.GroupNorm(2, 4, dtype=kiln.float64)
    assert double.weight.dtype == kiln.float64 and double.bias.dtype == kiln.float64
    assert [name for name, _ in nn.GroupNorm(2, 4).named_parameters()] == ["weight", "bias"]


@pytest.mark.parametrize("shape", [(5, 6), (3, 6, 7), (2, 6, 4, 5)])
def test_group_norm_module_matches_torch(shape):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.GroupNorm(2, 6)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours = nn.GroupNorm(2, 6)
    ours.load_state_dict({k: kiln.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    x, g = rand(shape, 3), rand(shape, 4)
    for mode in ("train", "eval"):  # no running statistics: the same in both modes
        getattr(ours, mode)()
        getattr(theirs, mode)()
        xk = kiln.tensor(x, requires_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        yk, yt = ours(xk), theirs(xt)
        assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-5
        yk.backward(kiln.tensor(g))
        yt.backward(torch.tensor(g))
        assert rel_err(xk.grad.numpy(), xt.grad.numpy()) < 1e-4
    assert rel_err(ours.weight.grad.numpy(), theirs.weight.grad.numpy()) < 1e-5
    assert rel_err(ours.bias.grad.numpy(), theirs.bias.grad.numpy()) < 1e-5


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.GroupNorm(4, 6), ValueError,
     r"GroupNorm: num_channels \(6\) must be divisible by num_groups \(4\)"),
    (lambda: nn.GroupNorm(0, 6), ValueError, "GroupNorm: num_groups must be positive, got 0"),
    (lambda: nn.GroupNorm(2, 0), ValueError, "GroupNorm: num_channels must be positive"),
    (lambda: nn.GroupNorm(2.0, 6), TypeError, "GroupNorm: num_groups must be an int"),
    (lambda: nn.GroupNorm(2, 6, eps=0), ValueError, "GroupNorm: eps must be a positive number"),
    (lambda: nn.GroupNorm(2, 6, dtype=kiln.int64), TypeError, "GroupNorm: parameters must"),
])
def test_group_norm_module_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_group_norm_module_checks_the_input():
    with pytest.raises(ValueError, match=r"group_norm: expected weight of shape \(4,\) for "
                       r"input \(2, 4, 3\), got \(6,\)"):
        nn.GroupNorm(2, 6)(kiln.zeros(2, 4, 3))
    # Without weight nothing ties C to num_channels, in PyTorch too.
    assert nn.GroupNorm(2, 6, affine=False)(kiln.randn(2, 4, 3)).shape == (2, 4, 3)


# ---------------------------------------------------------------- threads, ONNX
def test_group_norm_same_bits_at_every_thread_count():
    threads = kiln.get_num_threads()
    k = kiln.kernels
    results = []
    try:
        for dtype in (np.float32, np.float64):
            x, dy = rand((16, 32, 12, 12), 1, 3.0, 1.0, dtype), rand((16, 32, 12, 12), 2,
                                                                    dtype=dtype)
            w, b = rand((32,), 3, dtype=dtype), rand((32,), 4, dtype=dtype)
            for count in (1, 2, 3):
                kiln.set_num_threads(count)
                y, mean, rstd = k.group_norm_forward(x, 8, w, b)
                results.append((dtype, count, [y, mean, rstd,
                                               *k.group_norm_backward(dy, x, w, mean, rstd, 8)]))
    finally:
        kiln.set_num_threads(threads)
    for dtype, count, arrays in results:
        first = next(r for d, c, r in results if d == dtype and c == 1)
        for got, want in zip(arrays, first):
            assert np.array_equal(got, want), f"{dtype.__name__} at {count} threads"


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(6,), (6, 7), (6, 5, 4)])
def test_group_norm_exports_to_onnx(shape, affine, opset, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = nn.Sequential(nn.GroupNorm(3, 6, affine=affine), nn.GroupNorm(6, 6, eps=1e-3))
    if affine:
        model[0].weight.detach().numpy()[...] = rand((6,), 1)
        model[0].bias.detach().numpy()[...] = rand((6,), 2)
    path = tmp_path / "gn.onnx"
    kiln.onnx.export(model, kiln.tensor(rand((2, *shape), 3)), path, opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rand((4, *shape), 4, scale=2.0, shift=1.0)  # another batch size than exported
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    with kiln.no_grad():
        want = model(kiln.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize("args, kwargs", [
    ((5,), {}), (([4, 5],), {"eps": 1e-3}), (((2, 3),), {"bias": False}),
    ((6,), {"elementwise_affine": False}), ((6,), {"elementwise_affine": False, "bias": False}),
])
def test_layer_norm_module_state_dict_and_repr(args, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = nn.LayerNorm(*args, **kwargs), torch.nn.LayerNorm(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert ours.normalized_shape == theirs.normalized_shape
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 4, 5), (4, 5)),
                                               ((3, 2, 6), (2, 6)), ((1, 7), [7])])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_module_matches_torch(shape, normalized, bias):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LayerNorm(normalized, bias=bias)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours = nn.LayerNorm(normalized, bias=bias)
    ours.load_state_dict({k: kiln.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    x, g = rand(shape, 5, scale=3.0, shift=10.0), rand(shape, 6)
    xk, xt = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yk, yt = ours(xk), theirs(xt)
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-5
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    assert rel_err(xk.grad.numpy(), xt.grad.numpy()) < 1e-4
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert rel_err(p.grad.numpy(), q.grad.numpy()) < 1e-4, name


def test_layer_norm_gradcheck_and_thread_count():
    x = kiln.tensor(rand((3, 2, 4), 1, dtype=np.float64), requires_grad=True)
    w = kiln.tensor(rand((2, 4), 2, dtype=np.float64), requires_grad=True)
    b = kiln.tensor(rand((2, 4), 3, dtype=np.float64), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (2, 4), w, b, 1e-3), [x, w, b])
    k = kiln.kernels
    threads, results = kiln.get_num_threads(), []
    xs, dy = rand((64, 300), 4, 2.0, 1.0), rand((64, 300), 5)
    ws, bs = rand((300,), 6), rand((300,), 7)
    try:
        for count in (1, 2, 3):
            kiln.set_num_threads(count)
            y, mean, rstd = k.layer_norm_forward(xs, (300,), ws, bs)
            results.append([y, mean, rstd, *k.layer_norm_backward(dy, xs, (300,), ws, mean, rstd)])
    finally:
        kiln.set_num_threads(threads)
    for arrays in results[1:]:
        for got, want in zip(arrays, results[0]):
            assert np.array_equal(got, want)


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.LayerNorm(2.5), TypeError, "LayerNorm: normalized_shape"),
    (lambda: nn.LayerNorm((3, -1)), TypeError, "LayerNorm: normalized_shape"),
    (lambda: nn.LayerNorm(4, eps=-1.0), ValueError, "LayerNorm: eps"),
    (lambda: nn.LayerNorm(4)(kiln.zeros(2, 5)), ValueError,
     r"layer_norm: normalized_shape \(4,\) must match the trailing dimensions of input \(2, 5\)"),
])
def test_layer_norm_module_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- InstanceNorm
@pytest.mark.parametrize("cls", ["InstanceNorm1d", "InstanceNorm2d"])
@pytest.mark.parametrize("kwargs", [{}, {"affine": True}, {"track_running_stats": True},
                                    {"affine": True, "track_running_stats": True, "eps": 1e-3,
                                     "momentum": None}])
def test_instance_norm_module_state_dict_and_repr(cls, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(nn, cls)(3, **kwargs), getattr(torch.nn, cls)(3, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())


@pytest.mark.parametrize("cls, shape", [("InstanceNorm2d", (2, 3, 5, 4)),
                                        ("InstanceNorm2d", (3, 4, 4)),
                                        ("InstanceNorm1d", (4, 3, 6)), ("InstanceNorm1d", (3, 5))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_module_running_stats_match_torch(cls, shape, momentum):
    torch = pytest.importorskip("torch")
    kwargs = {"affine": True, "track_running_stats": True, "momentum": momentum}
    theirs = getattr(torch.nn, cls)(3, **kwargs)
    with torch.no_grad():
        theirs.weight.normal_()
        theirs.bias.normal_()
    ours = getattr(nn, cls)(3, **kwargs)
    ours.load_state_dict({k: kiln.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    for step, mode in enumerate(("train", "train", "train", "eval")):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x, g = rand(shape, 10 + step, scale=2.0, shift=step), rand(shape, 20 + step)
        xk, xt = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yk, yt = ours(xk), theirs(xt)
        assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-4, (step, mode)
        yk.backward(kiln.tensor(g))
        yt.backward(torch.tensor(g))
        assert rel_err(xk.grad.numpy(), xt.grad.numpy()) < 1e-4, (step, mode)
        for key, value in theirs.state_dict().items():
            assert rel_err(ours.state_dict()[key].numpy(), value.numpy()) < 1e-5, (step, key)
    assert int(ours.num_batches_tracked.item()) == 0  # PyTorch's instance norm never counts


def test_instance_norm_module_checks_the_input():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3D or 4D input \(got 2D"):
        nn.InstanceNorm2d(3)(kiln.zeros(3, 4))
    with pytest.raises(ValueError, match=r"InstanceNorm1d: expected input's size at dim=1 to "
                       r"match num_features \(3\)"):
        nn.InstanceNorm1d(3, affine=True)(kiln.zeros(2, 5, 4))
    x = rand((2, 5, 4, 4), 1)
    with pytest.warns(UserWarning, match="does not match num_features"):
        y = nn.InstanceNorm2d(3)(kiln.tensor(x))
    want = torch.nn.functional.instance_norm(torch.tensor(x))
    assert rel_err(y.numpy(), want.numpy()) < 1e-5
    with pytest.raises(ValueError, match=r"instance_norm: expected more than 1 spatial element"):
        nn.InstanceNorm2d(3)(kiln.zeros(2, 3, 1, 1))


def test_instance_norm_is_not_a_batch_norm():
    """As in PyTorch, instance norm shares _NormBase with batch norm but is no _BatchNorm:
    convert_sync_batchnorm leaves it alone."""
    model = nn.Sequential(nn.InstanceNorm2d(3, affine=True), nn.BatchNorm2d(3))
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(converted[0]) is nn.InstanceNorm2d
    assert type(converted[1]) is nn.SyncBatchNorm


def test_instance_norm_gradcheck():
    x = kiln.tensor(rand((2, 3, 4), 1, dtype=np.float64), requires_grad=True)
    w = kiln.tensor(rand((3,), 2, dtype=np.float64), requires_grad=True)
    b = kiln.tensor(rand((3,), 3, dtype=np.float64), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-3), [x, w, b])


# ---------------------------------------------------------------- LocalResponseNorm
def test_local_response_norm_module_matches_torch():
    torch = pytest.importorskip("torch")
    for args in ((2,), (5, 1e-3, 0.5, 2.0), (3, 0.2)):
        ours, theirs = nn.LocalResponseNorm(*args), torch.nn.LocalResponseNorm(*args)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == []
        x = rand((2, 6, 3, 3), 1, scale=3.0)
        xk, xt = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yk, yt = ours(xk), theirs(xt)
        assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < 1e-5
        yk.sum().backward()
        yt.sum().backward()
        assert rel_err(xk.grad.numpy(), xt.grad.numpy()) < 1e-4
    with pytest.raises(ValueError, match="LocalResponseNorm: size must be positive"):
        nn.LocalResponseNorm(0)


def test_local_response_norm_gradcheck():
    x = kiln.tensor(rand((2, 5, 3), 1, dtype=np.float64), requires_grad=True)
    assert gradcheck(lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=1.5), [x])
