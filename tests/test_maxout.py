"""Maxout: F.maxout (the grouped max op), nn.Maxout and nn.Maxout2d against NumPy's
definition and PyTorch's max pooling (same first-index routing of ties), float64
gradchecks and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import torch_f

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.autograd import gradcheck


def _grouped_max(x: np.ndarray, pieces: int, dim: int) -> np.ndarray:
    dim %= x.ndim
    shape = x.shape[:dim] + (x.shape[dim] // pieces, pieces) + x.shape[dim + 1:]
    return x.reshape(shape).max(axis=dim + 1)


@pytest.mark.parametrize("shape,pieces,dim", [
    ((2, 6, 3, 5), 3, 1), ((1, 4, 2, 2), 2, 1), ((5, 12), 4, -1), ((3, 7), 7, 1),
    ((2, 3, 4), 1, 2), ((8,), 2, 0), ((2, 6, 3), 2, -2),
])
def test_forward_is_the_grouped_max(shape, pieces, dim):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = F.maxout(kiln.tensor(x), pieces, dim)
    np.testing.assert_array_equal(y.detach().numpy(), _grouped_max(x, pieces, dim))


def test_non_contiguous_input():
    x = np.random.default_rng(1).standard_normal((6, 4, 5)).astype(np.float32)
    t = kiln.tensor(x).transpose(0, 2)  # (5, 4, 6), a view
    np.testing.assert_array_equal(F.maxout(t, 3, -1).detach().numpy(),
                                  _grouped_max(x.transpose(2, 1, 0), 3, -1))


def test_matches_torch_max_pool_with_ties_values_and_gradients():
    """Maxout along the last axis is a 1-D max pool with kernel = stride = pieces;
    PyTorch's pool sends a tie's gradient to the first maximal entry, and so does kiln."""
    tF = torch_f()
    import torch

    rng = np.random.default_rng(2)
    x = rng.integers(-2, 3, size=(4, 3, 12)).astype(np.float32)  # many ties
    g = rng.standard_normal((4, 3, 4)).astype(np.float32)
    kx = kiln.tensor(x, requires_grad=True)
    F.maxout(kx, 3, dim=-1).backward(kiln.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    ty = tF.max_pool1d(tx, 3, 3)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(F.maxout(kiln.tensor(x), 3, -1).numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(kx.grad.detach().numpy(), tx.grad.detach().numpy())


def test_tie_goes_to_the_first_index_and_nan_propagates():
    x = kiln.tensor(np.array([[1.0, 3.0, 3.0, 0.0, np.nan, 5.0]], np.float32),
                    requires_grad=True)
    y = F.maxout(x, 3, dim=1)
    np.testing.assert_array_equal(y.detach().numpy(), [[3.0, np.nan]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [[0, 1, 0, 0, 1, 0]])
    x.grad = None  # an infinite gradient reaches the maximal entry alone (no 0 * inf)
    F.maxout(x, 3, dim=1).backward(kiln.tensor(np.array([[np.inf, -2.0]], np.float32)))
    np.testing.assert_array_equal(x.grad.detach().numpy(), [[0, np.inf, 0, 0, -2, 0]])


@pytest.mark.parametrize("shape,pieces,dim", [((2, 6, 3, 3), 3, 1), ((3, 8), 4, -1)])
def test_gradcheck_float64(shape, pieces, dim):
    x = kiln.tensor(np.random.default_rng(3).standard_normal(shape), requires_grad=True)
    assert gradcheck(lambda t: F.maxout(t, pieces, dim), [x])


def test_maxout_layer_is_max_over_affine_pieces():
    kiln.manual_seed(0)
    layer = nn.Maxout(5, 3, pieces=4)
    assert set(layer.state_dict()) == {"linear.weight", "linear.bias"}
    assert tuple(layer.linear.weight.shape) == (12, 5)
    assert repr(layer) == ("Maxout(\n  in_features=5, out_features=3, pieces=4, bias=True\n"
                           "  (linear): Linear(in_features=5, out_features=12, bias=True)\n)")
    x = np.random.default_rng(4).standard_normal((7, 2, 5)).astype(np.float32)
    w, b = layer.linear.weight.detach().numpy(), layer.linear.bias.detach().numpy()
    pieces = (x @ w.T + b).reshape(7, 2, 3, 4)  # unit i: rows 4i .. 4i+3
    np.testing.assert_allclose(layer(kiln.tensor(x)).detach().numpy(), pieces.max(-1), rtol=1e-5,
                               atol=1e-6)


def test_maxout_layer_gradcheck_and_one_piece_is_linear():
    kiln.manual_seed(1)
    layer = nn.Maxout(4, 3, pieces=2).double()
    x = kiln.tensor(np.random.default_rng(5).standard_normal((6, 4)), requires_grad=True)
    assert gradcheck(layer, [x])
    one = nn.Maxout(4, 3, pieces=1, bias=False)
    np.testing.assert_allclose(one(kiln.tensor(x.detach().numpy().astype(np.float32))).detach().numpy(),
                               x.detach().numpy() @ one.linear.weight.detach().numpy().T,
                               rtol=1e-5, atol=1e-6)


def test_maxout2d_groups_consecutive_channels():
    x = np.random.default_rng(6).standard_normal((2, 6, 4, 3)).astype(np.float32)
    layer = nn.Maxout2d(3)
    assert repr(layer) == "Maxout2d(pieces=3)"
    y = layer(kiln.tensor(x)).detach().numpy()
    assert y.shape == (2, 2, 4, 3)
    np.testing.assert_array_equal(y[:, 1], x[:, 3:6].max(1))
    np.testing.assert_array_equal(layer(kiln.tensor(x[0])).detach().numpy(), y[0])  # (C, H, W)
    assert not layer.state_dict()


def test_conv_maxout_network_trains_one_step():
    kiln.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Maxout2d(2), nn.Flatten(), nn.Maxout(4 * 36, 5, 2))
    x = kiln.tensor(np.random.default_rng(7).standard_normal((3, 1, 8, 8)).astype(np.float32))
    loss = F.cross_entropy(net(x), kiln.tensor(np.array([0, 1, 4])))
    loss.backward()
    assert all(np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0
               for p in net.parameters())


def test_bad_input():
    x = kiln.tensor(np.zeros((2, 6, 3), np.float32))
    with pytest.raises(ValueError, match=r"maxout: size 6 of dimension 1 of input \(2, 6, 3\) "
                       r"is not a multiple of pieces=4"):
        F.maxout(x, 4)
    with pytest.raises(IndexError, match=r"maxout: dim 3 is out of range.*\(2, 6, 3\)"):
        F.maxout(x, 2, dim=3)
    with pytest.raises(ValueError, match="maxout: pieces must be positive, got 0"):
        F.maxout(x, 0)
    with pytest.raises(TypeError, match="maxout: pieces must be an int"):
        F.maxout(x, 2.0)
    with pytest.raises(TypeError, match="maxout: expected input to be a kiln.Tensor"):
        F.maxout(np.zeros((2, 4)), 2)
    with pytest.raises(ValueError, match=r"Maxout2d: expected a 3-D .* got shape \(2, 6\)"):
        nn.Maxout2d(2)(kiln.tensor(np.zeros((2, 6), np.float32)))
    with pytest.raises(ValueError, match="Maxout: pieces must be positive"):
        nn.Maxout(3, 2, 0)
