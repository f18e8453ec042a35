"""Losses: cross_entropy (class indices and probabilities), nll_loss, mse_loss, l1_loss,
binary_cross_entropy_with_logits and multi_margin_loss against PyTorch (forward and
gradients to input and target), float64 gradchecks, and bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from _helpers import f64, parity, rand, torch_f

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck

REDUCTIONS = ["mean", "sum", "none"]


def labels(shape: tuple[int, ...], classes: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, shape).astype(np.int64)


def probs(shape: tuple[int, ...], seed: int = 2) -> np.ndarray:
    e = np.exp(rand(shape, seed) * 2)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def class_weights(classes: int, weighted: bool) -> np.ndarray | None:
    return (
        np.random.default_rng(4).uniform(0.2, 2.0, classes).astype(np.float32) if weighted else None
    )


# ---------------------------------------------------------------- cross_entropy
CE_SHAPES = [(6, 5), (1, 3), (4, 1), (2, 3, 4), (2, 4, 3, 5), (3, 7, 1, 1), (1, 2, 300)]
CE_CASES = [
    (shape, reduction, weighted, ignore, smoothing)
    for shape, reduction, (weighted, ignore, smoothing) in itertools.product(
        CE_SHAPES,
        REDUCTIONS,
        [(False, None, 0.0), (True, -100, 0.0), (False, 1, 0.25), (True, 0, 0.1), (True, 0, 1.0)],
    )
]


@pytest.mark.parametrize("shape, reduction, weighted, ignore, smoothing", CE_CASES, ids=str)
def test_cross_entropy_class_indices(shape, reduction, weighted, ignore, smoothing):
    C = shape[1]
    x = rand(shape) * 3
    t = labels((shape[0], *shape[2:]), C)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore  # every third position ignored (or class `ignore`)
    w = class_weights(C, weighted)
    ii = -100 if ignore is None else ignore
    parity(
        lambda x, t, w: F.cross_entropy(
            x, t, w, ignore_index=ii, reduction=reduction, label_smoothing=smoothing
        ),
        lambda x, t, w: torch_f().cross_entropy(
            x, t, w, ignore_index=ii, reduction=reduction, label_smoothing=smoothing
        ),
        [x],
        [t, w],
    )


SOFT_CASES = list(
    itertools.product([(6, 5), (1, 4), (2, 3, 4, 5)], REDUCTIONS, [False, True], [0.0, 0.2])
)


@pytest.mark.parametrize("shape, reduction, weighted, smoothing", SOFT_CASES, ids=str)
def test_cross_entropy_probabilities(shape, reduction, weighted, smoothing):
    w = class_weights(shape[1], weighted)
    parity(
        lambda x, p, w: F.cross_entropy(x, p, w, reduction=reduction, label_smoothing=smoothing),
        lambda x, p, w: torch_f().cross_entropy(
            x, p, w, reduction=reduction, label_smoothing=smoothing
        ),
        [rand(shape) * 3, probs(shape)],
        [w],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_unbatched(reduction):
    x = rand((5,))
    for t in (np.array(3), probs((1, 5))[0]):
        parity(
            lambda x, t: F.cross_entropy(x, t, reduction=reduction),
            lambda x, t: torch_f().cross_entropy(x, t, reduction=reduction),
            [x],
            [t],
        )


def test_cross_entropy_all_ignored_and_empty_give_nan_like_torch():
    x, t = rand((3, 4)), np.full(3, -100, np.int64)
    parity(F.cross_entropy, torch_f().cross_entropy, [x], [t])
    parity(F.cross_entropy, torch_f().cross_entropy, [rand((0, 4))], [np.zeros(0, np.int64)])
    y = F.cross_entropy(kiln.tensor(x), kiln.tensor(t), reduction="sum")
    assert y.item() == 0.0


def test_cross_entropy_uint8_targets_and_float64():
    x = rand((4, 3))
    t = labels((4,), 3)
    a = F.cross_entropy(kiln.tensor(x), kiln.tensor(t.astype(np.uint8)))
    b = F.cross_entropy(kiln.tensor(x), kiln.tensor(t))
    assert a.item() == b.item()
    parity(F.cross_entropy, torch_f().cross_entropy, [x.astype(np.float64)], [t])


def test_cross_entropy_is_stable_for_large_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    y = F.cross_entropy(kiln.tensor(x), kiln.tensor(np.array([1, 2])), reduction="none")
    np.testing.assert_allclose(y.numpy(), [2e4, np.log(3)], rtol=1e-6)


# --------------------------------------------------------------------- nll_loss
NLL_CASES = list(
    itertools.product(
        [(5, 4), (1, 6), (2, 3, 5), (2, 4, 3, 2)], REDUCTIONS, [False, True], [None, -100, 2]
    )
)


@pytest.mark.parametrize("shape, reduction, weighted, ignore", NLL_CASES, ids=str)
def test_nll_loss(shape, reduction, weighted, ignore):
    t = labels((shape[0], *shape[2:]), shape[1])
    if ignore is not None:
        t.reshape(-1)[::2] = ignore
    w = class_weights(shape[1], weighted)
    ii = -100 if ignore is None else ignore
    parity(
        lambda x, t, w: F.nll_loss(x, t, w, ignore_index=ii, reduction=reduction),
        lambda x, t, w: torch_f().nll_loss(x, t, w, ignore_index=ii, reduction=reduction),
        [rand(shape)],
        [t, w],
    )


def test_nll_loss_unbatched_and_legacy_arguments():
    parity(F.nll_loss, torch_f().nll_loss, [rand((4,))], [np.array(2)])
    x, t = rand((3, 4)), labels((3,), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sa, r in [(False, None), (None, False), (True, True)]:
            parity(
                lambda x, t, sa=sa, r=r: F.nll_loss(x, t, size_average=sa, reduce=r),
                lambda x, t, sa=sa, r=r: torch_f().nll_loss(x, t, size_average=sa, reduce=r),
                [x],
                [t],
            )


# ------------------------------------------------------------------ mse and l1
REG_SHAPES = [(7,), (3, 4), (2, 3, 4, 5), (), (1, 1), (40000,)]


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("shape", REG_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(name, shape, reduction):
    parity(
        lambda x, y: getattr(F, name)(x, y, reduction=reduction),
        lambda x, y: getattr(torch_f(), name)(x, y, reduction=reduction),
        [rand(shape, 0), rand(shape, 1)],
    )


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_weighted(name, reduction):
    w = np.random.default_rng(5).uniform(0.1, 2, (3, 5)).astype(np.float32)
    parity(
        lambda x, y, w: getattr(F, name)(x, y, reduction=reduction, weight=w),
        lambda x, y, w: getattr(torch_f(), name)(x, y, reduction=reduction, weight=w),
        [rand((3, 5), 0), rand((3, 5), 1), w],
    )


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses_broadcast_and_promote(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for xs, ys in [((3, 4), (4,)), ((3, 1), (1, 5)), ((2, 3), (2, 3))]:
            parity(getattr(F, name), getattr(torch_f(), name), [rand(xs, 0), rand(ys, 1)])
        parity(
            getattr(F, name), getattr(torch_f(), name), [rand((3, 4)), rand((3, 4), 1, np.float64)]
        )
    with pytest.warns(UserWarning, match="target size"):
        getattr(F, name)(kiln.tensor(rand((3, 4))), kiln.tensor(rand((4,))))


def test_l1_gradient_is_zero_at_ties():
    x = kiln.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    F.l1_loss(x, kiln.tensor(np.array([1.0, 0.0, 5.0], np.float32)), reduction="sum").backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, -1.0])


# ------------------------------------------------------ binary_cross_entropy_with_logits
BCE_CASES = list(
    itertools.product(
        [(6,), (4, 5), (2, 3, 4, 5), (1, 1)], REDUCTIONS, [False, True], [False, True]
    )
)


@pytest.mark.parametrize("shape, reduction, weighted, positive", BCE_CASES, ids=str)
def test_bce_with_logits(shape, reduction, weighted, positive):
    rng = np.random.default_rng(6)
    y = rng.uniform(0, 1, shape).astype(np.float32)
    w = rng.uniform(0.2, 2, shape[-1:]).astype(np.float32) if weighted else None
    pw = rng.uniform(0.2, 3, shape[-1:]).astype(np.float32) if positive else None
    parity(
        lambda x, y, w, pw: F.binary_cross_entropy_with_logits(
            x, y, w, reduction=reduction, pos_weight=pw
        ),
        lambda x, y, w, pw: torch_f().binary_cross_entropy_with_logits(
            x, y, w, reduction=reduction, pos_weight=pw
        ),
        [rand(shape) * 4, y],
        [w, pw],
    )


def test_bce_with_logits_broadcast_weights_and_extreme_logits():
    rng = np.random.default_rng(7)
    x = np.array([[-100.0, 100.0, 0.0], [30.0, -30.0, 5.0]], np.float32)
    y = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, (2, 1)).astype(np.float32)
    pw = rng.uniform(0.5, 2, (3,)).astype(np.float32)
    for red in REDUCTIONS:
        parity(
            lambda x, y, w, pw, red=red: F.binary_cross_entropy_with_logits(
                x, y, w, reduction=red, pos_weight=pw
            ),
            lambda x, y, w, pw, red=red: torch_f().binary_cross_entropy_with_logits(
                x, y, w, reduction=red, pos_weight=pw
            ),
            [x, y],
            [w, pw],
        )


# ----------------------------------------------------------------- multi_margin_loss
MARGIN_CASES = list(
    itertools.product([(5, 4), (1, 3), (8, 10)], REDUCTIONS, [1, 2], [1.0, 0.3, 2.5], [False, True])
)


@pytest.mark.parametrize("shape, reduction, p, margin, weighted", MARGIN_CASES, ids=str)
def test_multi_margin_loss(shape, reduction, p, margin, weighted):
    t = labels(shape[:1], shape[1])
    w = class_weights(shape[1], weighted)
    parity(
        lambda x, t, w: F.multi_margin_loss(x, t, p, margin, w, reduction=reduction),
        lambda x, t, w: torch_f().multi_margin_loss(x, t, p, margin, w, reduction=reduction),
        [rand(shape)],
        [t, w],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multi_margin_loss_unbatched(reduction):
    for t in (np.array(2), np.array([2])):
        parity(
            lambda x, t: F.multi_margin_loss(x, t, reduction=reduction),
            lambda x, t: torch_f().multi_margin_loss(x, t, reduction=reduction),
            [rand((5,))],
            [t],
        )


# ------------------------------------------------------------------ gradchecks
def test_gradcheck_cross_entropy():
    t = kiln.tensor(np.array([[0, 2, -100], [1, 1, 3]]))
    w = kiln.tensor(np.array([0.5, 1.0, 2.0, 1.5]))
    for red in REDUCTIONS:
        assert gradcheck(
            lambda x, red=red: F.cross_entropy(x, t, w, reduction=red, label_smoothing=0.2),
            [f64((2, 4, 3))],
        )
    p = kiln.tensor(probs((3, 4)).astype(np.float64), requires_grad=True)
    assert gradcheck(lambda x, p: F.cross_entropy(x, p, w, label_smoothing=0.1), [f64((3, 4)), p])


def test_gradcheck_nll_mse_l1():
    t = kiln.tensor(np.array([[0, 2], [1, 1]]))
    w = kiln.tensor(np.array([0.5, 1.0, 2.0]))
    assert gradcheck(lambda x: F.nll_loss(x, t, w, ignore_index=2), [f64((2, 3, 2))])
    assert gradcheck(F.mse_loss, [f64((3, 4)), f64((3, 4), 1)])
    assert gradcheck(lambda x, y: F.l1_loss(x, y, reduction="sum"), [f64((3, 4)), f64((3, 4), 1)])
    wt = kiln.tensor(np.random.default_rng(3).uniform(0.1, 1, (3, 4)), requires_grad=True)
    assert gradcheck(lambda x, y, w: F.mse_loss(x, y, weight=w), [f64((3, 4)), f64((3, 4), 1), wt])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert gradcheck(F.mse_loss, [f64((3, 4)), f64((4,), 1)])


def test_gradcheck_bce_and_margin():
    y = kiln.tensor(np.random.default_rng(0).uniform(0, 1, (3, 4)), requires_grad=True)
    pw = kiln.tensor(np.array([0.5, 1.0, 2.0, 3.0]))
    assert gradcheck(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw), [f64((3, 4)), y]
    )
    t = kiln.tensor(np.array([0, 3, 1]))
    for p in (1, 2):
        assert gradcheck(lambda x, p=p: F.multi_margin_loss(x, t, p=p, margin=0.7), [f64((3, 4))])


# ------------------------------------------------------------------- bad input
def test_bad_reduction_names_the_op():
    x, t = kiln.tensor(rand((3, 4))), kiln.tensor(labels((3,), 4))
    y = kiln.tensor(rand((3, 4)))
    for call in [
        lambda: F.cross_entropy(x, t, reduction="avg"),
        lambda: F.nll_loss(x, t, reduction="elementwise_mean"),
        lambda: F.mse_loss(x, y, reduction="Mean"),
        lambda: F.l1_loss(x, y, reduction=None),
        lambda: F.binary_cross_entropy_with_logits(x, y, reduction=""),
        lambda: F.multi_margin_loss(x, t, reduction="max"),
    ]:
        with pytest.raises(ValueError, match="reduction"):
            call()


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "multi_margin_loss"])
def test_out_of_range_class_index(name):
    fn = getattr(F, name)
    x = kiln.tensor(rand((3, 4)))
    for bad in (4, -1, 10**12, -100 if name == "multi_margin_loss" else -5):
        t = kiln.tensor(np.array([0, bad, 1]))
        with pytest.raises(ValueError, match=rf"{name}.*{bad}.*4 classes"):
            fn(x, t)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "multi_margin_loss"])
def test_label_count_and_dtype_mismatch(name):
    fn = getattr(F, name)
    x = kiln.tensor(rand((3, 4)))
    with pytest.raises(ValueError, match=rf"{name}.*3.*2"):
        fn(x, kiln.tensor(np.array([0, 1])))
    with pytest.raises(TypeError, match=rf"{name}.*int64"):
        fn(x, kiln.tensor(np.array([0, 1, 2], np.int32)))
    with pytest.raises(TypeError, match=name):
        fn(x, [0, 1, 2])
    with pytest.raises(TypeError, match=name):
        fn(kiln.tensor(np.zeros((3, 4), np.int64)), kiln.tensor(np.array([0, 1, 2])))


def test_class_loss_bad_shapes_and_arguments():
    x = kiln.tensor(rand((2, 3, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(2, 5\).*\(2, 3, 4\)"):
        F.cross_entropy(x, kiln.tensor(labels((2, 5), 3)))
    with pytest.raises(TypeError, match="nll_loss.*float32"):
        F.nll_loss(x, kiln.tensor(rand((2, 4))))
    with pytest.raises(ValueError, match=r"cross_entropy.*weight.*\(3,\)"):
        F.cross_entropy(x, kiln.tensor(labels((2, 4), 3)), weight=kiln.tensor(np.ones(4, "f4")))
    with pytest.raises(ValueError, match="cross_entropy.*label_smoothing"):
        F.cross_entropy(x, kiln.tensor(labels((2, 4), 3)), label_smoothing=1.5)
    with pytest.raises(ValueError, match="cross_entropy.*ignore_index"):
        F.cross_entropy(x, kiln.tensor(rand((2, 3, 4))), ignore_index=1)
    with pytest.raises(TypeError, match="cross_entropy.*probabilities"):
        F.cross_entropy(x, kiln.tensor(np.zeros((2, 3, 4), np.int64)))
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(kiln.tensor(rand(())), kiln.tensor(np.array(0)))
    with pytest.raises(ValueError, match="cross_entropy.*0-D target"):
        F.cross_entropy(kiln.tensor(rand((4,))), kiln.tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match="multi_margin_loss.*p"):
        F.multi_margin_loss(kiln.tensor(rand((3, 4))), kiln.tensor(labels((3,), 4)), p=3)
    with pytest.raises(ValueError, match="multi_margin_loss"):
        F.multi_margin_loss(x, kiln.tensor(labels((2,), 3)))


def test_regression_and_bce_bad_input():
    x = kiln.tensor(rand((3, 4)))
    for name in ("mse_loss", "l1_loss"):
        fn = getattr(F, name)
        with pytest.raises(TypeError, match=rf"{name}.*int64"):
            fn(x, kiln.tensor(np.zeros((3, 4), np.int64)))
        with pytest.raises(ValueError, match=rf"{name}.*\(3, 4\).*\(2, 4\)"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(x, kiln.tensor(rand((2, 4))))
        with pytest.raises(ValueError, match=rf"{name}.*weight"):
            fn(x, x, weight=kiln.tensor(rand((4,))))
        with pytest.raises(TypeError, match=name):
            fn(x, 1.0)
    bce = F.binary_cross_entropy_with_logits
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits.*\(3, 1\)"):
        bce(x, kiln.tensor(rand((3, 1))))
    with pytest.raises(TypeError, match="binary_cross_entropy_with_logits.*int64"):
        bce(x, kiln.tensor(np.zeros((3, 4), np.int64)))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits.*pos_weight"):
        bce(x, x, pos_weight=kiln.tensor(rand((3,))))


def test_kernels_reject_bad_indices_without_crashing():
    k = kiln.kernels
    x, g = rand((3, 4)), np.ones((), np.float32)
    for bad in (4, -7, 2**62):
        t = np.array([0, bad, 1])
        with pytest.raises(ValueError, match="out of range"):
            k.cross_entropy_forward(x, t)
        with pytest.raises(ValueError, match="out of range"):
            k.cross_entropy_backward(g, x, t, 3.0)
        with pytest.raises(ValueError, match="out of range"):
            k.nll_loss_backward(g, x, t, 3.0)
        with pytest.raises(ValueError, match="out of range"):
            k.multi_margin_loss_backward(g, x, t)
    with pytest.raises(ValueError, match="grad_output"):
        k.mse_loss_backward(np.ones(3, np.float32), x, x, "none")
    with pytest.raises(ValueError, match="reduction"):
        k.l1_loss_forward(x, x, "avg")
