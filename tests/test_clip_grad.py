"""kiln.nn.utils gradient clipping: against torch.nn.utils and a NumPy reference,
every norm type, edge cases and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import torch_or_skip

import kiln
from kiln import kernels
from kiln.nn import utils

SHAPES = [(16, 3, 3, 3), (16,), (7, 5), (1,), (300, 301)]
NORM_TYPES = [2.0, 1.0, 3.0, 0.5, float("inf"), "inf", -float("inf"), 0.0, -1.0]


def _params(dtype=np.float32, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    params = [kiln.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = kiln.tensor(g)
    return params, grads


def _reference_norm(arrays, q):
    def norm(x):
        a = np.abs(np.asarray(x, np.float64).ravel())
        if q == np.inf:
            return a.max()
        if q == -np.inf:
            return a.min()
        if q == 0:
            return float(np.count_nonzero(a))
        return (a ** q).sum() ** (1 / q)

    return norm([norm(a) for a in arrays])


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_reference(norm_type, max_norm):
    params, grads = _params()
    q = float(norm_type)
    expected = _reference_norm(grads, q)
    total = utils.clip_grad_norm_(params, max_norm, norm_type)
    assert total.shape == () and total.dtype == np.float32
    assert total.item() == pytest.approx(expected, rel=1e-5)
    coef = min(max_norm / (expected + 1e-6), 1.0)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 0.5])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = torch_or_skip()
    params, grads = _params(scale=3.0)
    tparams = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.grad = torch.tensor(g)
    total = utils.clip_grad_norm_(params, 2.0, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 2.0, norm_type)
    # PyTorch sums in float32, kiln in float64: a p=0.5 sum of 90k terms differs in the 6th digit.
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-5)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-9)


def test_clip_grad_value_matches_torch():
    torch = torch_or_skip()
    params, grads = _params(scale=2.0)
    grads[1][3] = np.nan
    params[1].grad = kiln.tensor(grads[1])
    tparams = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    for p, g in zip(tparams, grads):
        p.grad = torch.tensor(g)
    assert utils.clip_grad_value_(params, 0.7) is None
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for p, t in zip(params, tparams):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_float64_single_tensor_and_parameters_without_grad():
    params, grads = _params(np.float64)
    params[2].grad = None
    total = utils.clip_grad_norm_(iter(params), 1.0)
    assert total.dtype == np.float64
    kept = [g for i, g in enumerate(grads) if i != 2]
    assert total.item() == pytest.approx(np.sqrt(sum((g ** 2).sum() for g in kept)), rel=1e-12)
    assert params[2].grad is None
    one = kiln.tensor(np.array([3.0, 4.0]), requires_grad=True)
    one.grad = kiln.tensor(np.array([3.0, 4.0]))
    assert utils.clip_grad_norm_(one, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(one.grad.numpy(), [0.6, 0.8], rtol=1e-6)


def test_get_total_norm_and_clip_with_norm():
    params, grads = _params()
    total = utils.get_total_norm([p.grad for p in params], 2.0)
    assert total.item() == pytest.approx(_reference_norm(grads, 2.0), rel=1e-6)
    utils.clip_grads_with_norm_(params, 1.0, total)
    assert utils.get_total_norm([p.grad for p in params]).item() == pytest.approx(1.0, rel=1e-5)
    assert utils.get_total_norm([]).item() == 0.0


def test_nonfinite_norm():
    params, _ = _params()
    params[0].grad.numpy()[0, 0, 0, 0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert np.isinf(params[0].grad.numpy()[0, 0, 0, 0])  # nothing was scaled
    total = utils.clip_grad_norm_(params, 1.0)
    assert np.isinf(total.item())


def test_empty_generator_warns_and_strided_grad_is_scaled_in_place():
    with pytest.warns(UserWarning, match="empty generator"):
        assert utils.clip_grad_norm_((p for p in []), 1.0).item() == 0.0
    p = kiln.zeros(4, 3, requires_grad=True)
    base = np.full((3, 4), 2.0, np.float32)
    p.grad = kiln.from_numpy(base.T)
    utils.clip_grad_norm_([p], 1.0)
    np.testing.assert_allclose(base, 2.0 / np.sqrt(48.0), rtol=1e-5)
    utils.clip_grad_value_([p], 0.1)
    np.testing.assert_allclose(base, 0.1, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FutureWarning):
            utils.clip_grad_norm([p], 1.0)


def test_norm_kernel_does_not_depend_on_threads():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (1 << 20, 77, 50_000)]
    threads = kiln.get_num_threads()
    try:
        kiln.set_num_threads(1)
        one = kernels.grad_norms(arrays, 2.0)
        kiln.set_num_threads(2)
        two = kernels.grad_norms(arrays, 2.0)
    finally:
        kiln.set_num_threads(threads)
    assert one == two


def test_bad_input():
    params, _ = _params()
    with pytest.raises(TypeError, match="clip_grad_norm_: expected a Tensor or an iterable"):
        utils.clip_grad_norm_(3, 1.0)
    with pytest.raises(TypeError, match="clip_grad_norm_: expected Tensors"):
        utils.clip_grad_norm_([np.zeros(3)], 1.0)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        utils.clip_grad_norm_(params, -1.0)
    with pytest.raises(TypeError, match="norm_type must be a number"):
        utils.clip_grad_norm_(params, 1.0, norm_type="two")
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        utils.clip_grad_value_(params, -0.5)
    with pytest.raises(TypeError, match="clip_value must be a number"):
        utils.clip_grad_value_(params, None)
    with pytest.raises(TypeError, match="grad_norms: expected tensors"):
        kernels.grad_norms([np.zeros(3, np.int64)], 2.0)
    with pytest.raises(ValueError, match=r"scale_: tensors\[0\] and tensors\[1\]"):
        a = np.zeros(3, np.float32)
        kernels.scale_([a, a], 0.5)
    with pytest.raises(ValueError, match="clamp_: min 1 is larger than max 0"):
        kernels.clamp_([np.zeros(3, np.float32)], 1.0, 0.0)
