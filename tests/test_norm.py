"""batch_norm against PyTorch (output, running statistics over several steps, gradients
of input, weight and bias), float64 gradchecks, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
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
