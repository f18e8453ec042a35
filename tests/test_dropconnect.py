"""DropConnect: DropConnectLinear and DropConnectConv2d mask their weights (and bias)
per forward call with the dropout kernel's Philox masks; drop rate and expectation
statistics, eval equals the plain layer, gradients and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.autograd import gradcheck


def _randn(*shape: int, dtype: type = np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _masks(layer: nn.Module, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The keep masks a forward after manual_seed(seed) draws: the dropout kernel over
    the weight, then over the bias."""
    kiln.manual_seed(seed)
    w = F.dropout(kiln.tensor(np.ones(layer.weight.shape, np.float32)), layer.p).numpy() != 0
    b = None if layer.bias is None else F.dropout(
        kiln.tensor(np.ones(layer.bias.shape, np.float32)), layer.p).detach().numpy() != 0
    return w, b


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_linear_uses_masked_rescaled_weights(p):
    kiln.manual_seed(0)
    layer = nn.DropConnectLinear(6, 5, p=p)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    x = _randn(4, 6)
    kiln.manual_seed(9)
    y = layer(kiln.tensor(x)).detach().numpy()
    keep_w, keep_b = _masks(layer, 9)
    expected = x @ (w * keep_w / np.float32(1 - p)).T + b * keep_b / np.float32(1 - p)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_drop_rate_and_exact_scale_of_the_weight():
    """The identity matrix as input reads the masked weight out: W_masked^T = I W_m^T."""
    p, n = 0.3, 400
    kiln.manual_seed(1)
    layer = nn.DropConnectLinear(n, n, bias=False, p=p)
    w = layer.weight.detach().numpy()
    masked = layer(kiln.tensor(np.eye(n, dtype=np.float32))).detach().numpy().T
    dropped = masked == 0
    assert abs(dropped.mean() - p) < 4.5 * np.sqrt(p * (1 - p) / n**2)
    np.testing.assert_allclose(masked[~dropped], w[~dropped] / (1 - p), rtol=1e-6)


def test_expectation_in_training_is_the_eval_output():
    """The mean of many training outputs converges to the eval output (the full weights),
    each entry within 5 standard errors of the masked-weight noise."""
    kiln.manual_seed(2)
    p, trials = 0.5, 3000
    layer = nn.DropConnectLinear(3, 4, p=p).double()
    x = kiln.tensor(_randn(1, 3, dtype=np.float64))
    outs = np.stack([layer(x).detach().numpy() for _ in range(trials)])
    layer.eval()
    full = layer(x).detach().numpy()
    # Var of one output: sum over terms t (x_j w_j or b) of t^2 p / (1 - p).
    terms = np.concatenate([(x.detach().numpy()[0] * layer.weight.detach().numpy()) ** 2,
                            layer.bias.detach().numpy()[:, None] ** 2], axis=1)
    sigma = np.sqrt(terms.sum(1) * p / (1 - p) / trials)
    assert np.all(np.abs(outs.mean(0) - full) < 5 * sigma)


def test_eval_and_p_zero_are_the_plain_layer_and_masks_are_fresh():
    kiln.manual_seed(3)
    layer = nn.DropConnectLinear(5, 3, p=0.5)
    x = kiln.tensor(_randn(2, 5))
    plain = F.linear(x, layer.weight, layer.bias).detach().numpy()
    a, b = layer(x).detach().numpy(), layer(x).detach().numpy()
    assert not np.array_equal(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(), plain)
    layer.train()
    layer.p = 0.0
    np.testing.assert_array_equal(layer(x).detach().numpy(), plain)
    layer.p = 1.0
    np.testing.assert_array_equal(layer(x).detach().numpy(), np.zeros((2, 3)))


def test_linear_gradients():
    kiln.manual_seed(4)
    p = 0.4
    layer = nn.DropConnectLinear(4, 3, p=p).double()
    x = kiln.tensor(_randn(5, 4, dtype=np.float64), requires_grad=True)

    def fn(t):
        kiln.manual_seed(6)
        return layer(t)

    assert gradcheck(fn, [x])
    layer.zero_grad()
    g = _randn(5, 3, dtype=np.float64, seed=1)
    fn(x).backward(kiln.tensor(g))
    keep_w, keep_b = _masks(layer, 6)
    np.testing.assert_allclose(layer.weight.grad.detach().numpy(),
                               keep_w / (1 - p) * (g.T @ x.detach().numpy()), rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad.detach().numpy(), keep_b / (1 - p) * g.sum(0),
                               rtol=1e-10)


def test_conv_uses_masked_kernel_and_bias():
    kiln.manual_seed(5)
    p = 0.5
    layer = nn.DropConnectConv2d(3, 4, 3, stride=2, padding=1, p=p)
    assert set(layer.state_dict()) == {"weight", "bias"}
    assert repr(layer) == "DropConnectConv2d(3, 4, kernel_size=(3, 3), stride=(2, 2), " \
        "padding=(1, 1), p=0.5)"
    x = kiln.tensor(_randn(2, 3, 7, 7))
    kiln.manual_seed(10)
    y = layer(x).detach().numpy()
    keep_w, keep_b = _masks(layer, 10)
    w = kiln.tensor(layer.weight.detach().numpy() * keep_w / np.float32(1 - p))
    b = kiln.tensor(layer.bias.detach().numpy() * keep_b / np.float32(1 - p))
    np.testing.assert_allclose(y, F.conv2d(x, w, b, 2, 1).detach().numpy(), rtol=1e-5, atol=1e-6)
    layer.eval()
    np.testing.assert_array_equal(layer(x).detach().numpy(),
                                  F.conv2d(x, layer.weight, layer.bias, 2,
                                                             1).detach().numpy())


def test_conv_gradcheck_float64_and_padding_modes():
    kiln.manual_seed(7)
    layer = nn.DropConnectConv2d(2, 3, 3, padding=1, padding_mode="reflect", p=0.3).double()
    x = kiln.tensor(_randn(2, 2, 5, 5, dtype=np.float64), requires_grad=True)

    def fn(t):
        kiln.manual_seed(8)
        return layer(t)

    assert gradcheck(fn, [x])


def test_linear_repr_and_bad_p():
    assert repr(nn.DropConnectLinear(3, 2, p=0.2)) == \
        "DropConnectLinear(in_features=3, out_features=2, bias=True, p=0.2)"
    with pytest.raises(ValueError, match="DropConnectLinear: p must be a probability in "
                       r"\[0, 1\], got 1.5"):
        nn.DropConnectLinear(3, 2, p=1.5)
    with pytest.raises(TypeError, match="DropConnectConv2d: p must be a float"):
        nn.DropConnectConv2d(3, 2, 3, p="0.5")
