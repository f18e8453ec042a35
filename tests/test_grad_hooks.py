"""Tensor.register_post_accumulate_grad_hook: when it runs, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import torch_or_skip

import kiln


def test_runs_once_after_all_contributions_like_torch():
    torch = torch_or_skip()
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    seen = {}
    for lib in ("kiln", "torch"):
        mod = kiln if lib == "kiln" else torch
        w = mod.tensor(w0.copy(), requires_grad=True)
        log = []
        w.register_post_accumulate_grad_hook(
            lambda t, log=log: log.append(np.array(t.grad.detach().numpy(), copy=True)))
        (w * 2 + w * w).sum().backward()  # two paths into w: one call, the full gradient
        (w * 3).sum().backward()  # accumulates: the hook sees the sum
        seen[lib] = log
    assert len(seen["kiln"]) == len(seen["torch"]) == 2
    for a, b in zip(seen["kiln"], seen["torch"]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_order_follows_backward_and_root_leaf_and_remove():
    a = kiln.randn(2, 2, requires_grad=True)
    b = kiln.randn(2, 2, requires_grad=True)
    order = []
    ha = a.register_post_accumulate_grad_hook(lambda t: order.append("a"))
    b.register_post_accumulate_grad_hook(lambda t: order.append("b"))
    ((a @ b).relu() @ b).sum().backward()
    assert sorted(order) == ["a", "b"]  # each once, though b feeds two matmuls
    order.clear()
    a.backward(kiln.ones(2, 2))  # a root that is itself the leaf
    assert order == ["a"]
    ha.remove()
    order.clear()
    (a * b).sum().backward()
    assert order == ["b"]


def test_not_run_for_leaves_without_a_gradient_this_pass():
    a = kiln.randn(3, requires_grad=True)
    b = kiln.randn(3, requires_grad=True)
    calls = []
    b.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    a.sum().backward()
    assert calls == [] and b.grad is None


def test_bad_registrations():
    leaf = kiln.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (leaf * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        kiln.randn(3).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        leaf.register_post_accumulate_grad_hook(3)
