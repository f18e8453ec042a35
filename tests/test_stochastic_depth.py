"""Stochastic depth as torchvision defines it: F.stochastic_depth against the
definition (same masks), drop-rate and expectation statistics, gradients, the module's
repr and errors, and the CIFAR ResNets' drop_path_rate (linear in depth)."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import models, nn
from kiln.autograd import gradcheck


def _randn(*shape: int, dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _reference(x: np.ndarray, p: float, keep: np.ndarray, mode: str) -> np.ndarray:
    """torchvision's definition: noise of shape (N, 1, ...) ('row') or (1, ...) ('batch'),
    Bernoulli(1 - p) divided by 1 - p when 1 - p > 0; output input * noise."""
    size = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    noise = keep.astype(x.dtype).reshape(size)
    if 1.0 - p > 0:
        noise = noise / x.dtype.type(1.0 - p)
    return x * noise


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_definition_with_the_same_masks(mode, p, dtype):
    x = _randn(64, 3, 4, 2, dtype=dtype)
    draws = 64 if mode == "row" else 1
    kiln.manual_seed(11)
    y = F.stochastic_depth(kiln.tensor(x), p, mode).detach().numpy()
    kiln.manual_seed(11)  # the same Philox draws, read as a keep mask
    keep = F.dropout(kiln.tensor(np.ones(draws, dtype)), p).detach().numpy() != 0
    np.testing.assert_array_equal(y, _reference(x, p, keep, mode))
    assert y.dtype == dtype


def test_p_one_zeroes_and_p_zero_or_eval_return_the_input():
    x = kiln.tensor(_randn(5, 3))
    np.testing.assert_array_equal(F.stochastic_depth(x, 1.0, "row").numpy(), np.zeros((5, 3)))
    np.testing.assert_array_equal(F.stochastic_depth(x, 1.0, "batch").numpy(), np.zeros((5, 3)))
    assert F.stochastic_depth(x, 0.0, "row") is x
    assert F.stochastic_depth(x, 0.7, "batch", training=False) is x


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_row_drop_rate_and_expectation(p):
    """Each sample is dropped independently with probability p (binomial bound), and
    the mean over samples is the input's (the eval output's) within its bound."""
    kiln.manual_seed(3)
    n = 100_000
    y = F.stochastic_depth(kiln.tensor(np.ones((n, 2), np.float32)), p, "row").detach().numpy()
    dropped = (y[:, 0] == 0).mean()
    assert np.all(y[:, 0] == y[:, 1])  # a whole row at a time
    assert abs(dropped - p) < 4.5 * np.sqrt(p * (1 - p) / n)
    sigma = np.sqrt(p / (1 - p) / n)  # std of the mean of noise with mean 1
    assert abs(y.mean() - 1.0) < 4.5 * sigma


def test_batch_mode_drops_all_or_nothing_at_rate_p():
    kiln.manual_seed(4)
    p, trials = 0.3, 4000
    x = kiln.tensor(np.ones((6, 2), np.float32))
    outcomes = [F.stochastic_depth(x, p, "batch").detach().numpy() for _ in range(trials)]
    assert all(np.all(o == o.flat[0]) for o in outcomes)
    dropped = np.mean([o.flat[0] == 0 for o in outcomes])
    assert abs(dropped - p) < 4.5 * np.sqrt(p * (1 - p) / trials)


def test_same_seed_same_drops_fresh_otherwise():
    x = kiln.tensor(np.ones((256, 1), np.float32))
    kiln.manual_seed(5)
    a, b = F.stochastic_depth(x, 0.5, "row").numpy(), F.stochastic_depth(x, 0.5, "row").numpy()
    kiln.manual_seed(5)
    np.testing.assert_array_equal(F.stochastic_depth(x, 0.5, "row").detach().numpy(), a)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_gradcheck_float64_and_gradient_is_the_noise(mode):
    x = kiln.tensor(_randn(6, 3, 2, dtype=np.float64, seed=1), requires_grad=True)

    def fn(t):
        kiln.manual_seed(8)  # the same draws at every evaluation
        return F.stochastic_depth(t, 0.4, mode)

    assert gradcheck(fn, [x])
    x.grad = None
    fn(x).sum().backward()
    y = fn(kiln.tensor(np.ones((6, 3, 2))))
    np.testing.assert_array_equal(x.grad.detach().numpy(), y.detach().numpy())


def test_module_repr_eval_and_errors():
    layer = nn.StochasticDepth(0.2, "row")
    assert repr(layer) == "StochasticDepth(p=0.2, mode=row)"
    x = kiln.tensor(_randn(4, 3))
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match=r"^drop probability has to be between 0 and 1, but "
                       r"got 1.5$"):
        nn.StochasticDepth(1.5, "row")
    with pytest.raises(ValueError, match=r"^mode has to be either 'batch' or 'row', but got "
                       r"col$"):
        F.stochastic_depth(x, 0.5, "col")
    with pytest.raises(ValueError, match="drop probability has to be between 0 and 1, but "
                       "got -0.1"):
        F.stochastic_depth(x, -0.1, "batch")
    with pytest.raises(TypeError, match="stochastic_depth: expected input of dtype float32 "
                       "or float64"):
        F.stochastic_depth(kiln.tensor(np.ones((2, 2), np.int64)), 0.5, "row")
    with pytest.raises(ValueError, match="stochastic_depth: mode='row' needs an input with a "
                       "batch dimension"):
        F.stochastic_depth(kiln.tensor(np.float32(1.0)), 0.5, "row")


def test_resnet_drop_path_rate_is_linear_in_depth():
    model = models.resnet20(drop_path_rate=0.3)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3) for b in layer]
    rates = [b.drop_path.p for b in blocks]
    np.testing.assert_allclose(rates, [0.3 * block / 9 for block in range(1, 10)])
    assert all(b.drop_path.mode == "row" for b in blocks)
    assert all(b.drop_path is None for b in models.resnet32().layer1)
    assert [b.drop_path.p for b in models.resnet56(drop_path_rate=0.5).layer3][-1] == 0.5
    with pytest.raises(ValueError, match="resnet20: drop_path_rate must be a probability"):
        models.resnet20(drop_path_rate=1.5)
    with pytest.raises(ValueError, match="drop probability has to be between 0 and 1"):
        models.BasicBlock(4, 4, drop_path=-0.1)


def test_resnet_with_drop_path_trains_and_is_deterministic_in_eval():
    kiln.manual_seed(0)
    model = models.resnet20(num_classes=4, in_channels=1, drop_path_rate=0.5)
    plain = models.resnet20(num_classes=4, in_channels=1)
    plain.load_state_dict(model.state_dict())
    x = kiln.tensor(_randn(8, 1, 8, 8))
    model.eval(), plain.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), plain(x).detach().numpy())
    model.train(), plain.train()
    kiln.manual_seed(1)
    out = model(x)
    F.cross_entropy(out, kiln.tensor(np.arange(8) % 4)).backward()
    assert np.isfinite(model.conv1.weight.grad.detach().numpy()).all()
    # Some branches were dropped:
    assert not np.allclose(out.detach().numpy(), plain(x).detach().numpy())
