"""L2, L1 and elastic-net penalties: values, gradients (finite differences and
PyTorch), iterables of parameters and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import torch_or_skip

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.autograd import gradcheck


def _weights(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [kiln.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
            for s in [(4, 3), (5,), (2, 3, 2, 2)]]


def _reference(arrays, l1, l2):
    return sum(l1 * np.abs(a).sum() + l2 * (a.astype(np.float64) ** 2).sum() for a in arrays)


@pytest.mark.parametrize("fn,l1,l2", [
    (lambda ws: F.l2_penalty(ws), 0.0, 1.0),
    (lambda ws: F.l1_penalty(ws), 1.0, 0.0),
    (lambda ws: F.elastic_net_penalty(ws, 0.3), 0.3, 0.7),
    (lambda ws: F.elastic_net_penalty(ws), 0.5, 0.5),
])
def test_values_and_gradients(fn, l1, l2):
    ws = _weights()
    value = fn(ws)
    assert value.shape == () and value.dtype == np.float64
    assert value.item() == pytest.approx(_reference([w.detach().numpy() for w in ws], l1, l2))
    value.backward()
    for w in ws:
        a = w.detach().numpy()
        np.testing.assert_allclose(w.grad.numpy(), l1 * np.sign(a) + 2 * l2 * a, rtol=1e-12)
    assert gradcheck(lambda *t: fn(list(t)), _weights(seed=1))


def test_matches_torch_in_float32():
    torch = torch_or_skip()
    ws = _weights(np.float32)
    tws = [torch.tensor(w.detach().numpy(), requires_grad=True) for w in ws]
    value = F.elastic_net_penalty(ws, 0.25)
    expected = sum(0.25 * t.abs().sum() + 0.75 * (t ** 2).sum() for t in tws)
    assert value.dtype == np.float32
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    (value * 3.0).backward()
    (expected * 3.0).backward()
    for w, t in zip(ws, tws):
        np.testing.assert_allclose(w.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_as_a_loss_term_on_model_parameters():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = kiln.randn(5, 3)
    loss = net(x).sum() + 0.1 * F.l2_penalty(net.parameters())
    loss.backward()
    plain = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    plain.load_state_dict(net.state_dict())
    plain(x).sum().backward()
    for p, q in zip(net.parameters(), plain.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy() + 0.2 * p.detach().numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_single_tensor_frozen_tensor_and_empty():
    w = kiln.tensor([[-2.0, 0.0, 3.0]], requires_grad=True)
    frozen = kiln.tensor([1.0, -1.0])
    value = F.l1_penalty([w, frozen])
    assert value.item() == 7.0
    value.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[-1.0, 0.0, 1.0]])  # sign(0) = 0
    assert frozen.grad is None
    assert F.l2_penalty(w).item() == 13.0
    assert F.l2_penalty([]).item() == 0.0


def test_bad_input():
    ws = _weights()
    with pytest.raises(TypeError, match="l2_penalty: expected a Tensor or an iterable"):
        F.l2_penalty(3.0)
    with pytest.raises(TypeError, match="l1_penalty: expected Tensors"):
        F.l1_penalty([np.ones(3)])
    with pytest.raises(TypeError, match="l2_penalty: expected floating point"):
        F.l2_penalty([kiln.tensor([1, 2])])
    with pytest.raises(ValueError, match=r"elastic_net_penalty: l1_ratio must be in \[0, 1\]"):
        F.elastic_net_penalty(ws, 1.5)
    with pytest.raises(TypeError, match="l1_ratio must be a real number"):
        F.elastic_net_penalty(ws, "half")
