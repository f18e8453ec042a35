"""Tensor, autograd tape and factories: values and gradients against NumPy/PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import f64, torch_or_skip

import kiln
from kiln.autograd import gradcheck


# --------------------------------------------------------------- gradchecks
@pytest.mark.parametrize(
    "fn, shapes",
    [
        (lambda a, b: a + b, [(3, 4), (4,)]),
        (lambda a, b: a - b, [(2, 1, 3), (4, 1)]),
        (lambda a, b: a * b, [(3, 4), (3, 1)]),
        (lambda a, b: a / (b * b + 1), [(3, 4), (1, 4)]),
        (lambda a, b: (a.abs() + 0.5) ** b, [(3, 4), (4,)]),
        (lambda a: a**3 - 2 * a, [(5,)]),
        (lambda a: 2.0**a + 1 / (a * a + 1), [(5,)]),
        (lambda a: -a.exp() + (a * a + 1).log() + (a * a + 1).sqrt(), [(2, 3)]),
        (lambda a: a.clamp(-0.3, 0.4) + a.clamp(min=0.1) + a.clamp(max=-0.1), [(4, 5)]),
        (lambda a: a.sum() + a.sum(0).sum() + a.sum((0, 2), keepdim=True).sum(), [(2, 3, 4)]),
        (lambda a: a.mean(-1) * a.mean(dim=1, keepdim=True).sum(), [(3, 4)]),
        (lambda a: a.max(1).values + a.min(0, keepdim=True).values.sum() + a.max(), [(3, 4)]),
        (lambda a: a.reshape(4, 3).t() * a.reshape(3, 4).T.T, [(3, 4)]),
        (lambda a: a.view(-1, 2).permute(1, 0).transpose(0, 1).flatten(), [(3, 4)]),
        (lambda a: a.unsqueeze(1).squeeze(1).expand(2, 3, 4), [(3, 4)]),
        (lambda a: a[1:, ::2] * 2 + a[[0, 0, 2]].sum(0, keepdim=True)[:, :2], [(3, 4)]),
        (lambda a, b: kiln.cat([a, b, a], dim=1), [(2, 3), (2, 1)]),
        (lambda a, b: kiln.stack([a, b], dim=-1), [(2, 3), (2, 3)]),
        (lambda a, b: kiln.where(a > 0, a, b * 2), [(3, 4), (4,)]),
        (lambda a: a.double().to(kiln.float64) * 1.5 + a.clone(), [(3,)]),
    ],
)
def test_gradcheck_tensor_ops(fn, shapes):
    inputs = [f64(s, i) for i, s in enumerate(shapes)]
    assert gradcheck(fn, inputs)


def test_gradcheck_reports_a_wrong_gradient():
    class Wrong(kiln.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    with pytest.raises(AssertionError, match="gradcheck: gradient of input 0"):
        gradcheck(Wrong.apply, [f64((3,))])
    assert gradcheck(Wrong.apply, [f64((3,))], raise_exception=False) is False


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [kiln.randn(3, requires_grad=True)])


# ------------------------------------------------------------ the tape itself
def test_gradient_accumulates_across_uses_and_calls():
    x = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 5.0, 7.0])
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0, 9.0])
    x.grad = None
    assert x.grad is None


def test_diamond_graph_and_shared_subexpression():
    x = kiln.tensor([0.5, -1.0], requires_grad=True)
    h = x.exp()
    y = (h * h + h.log()).sum()
    y.backward()
    # y = sum(e^{2x} + x)  =>  dy/dx = 2 e^{2x} + 1
    expected = 2 * np.exp(2 * np.array([0.5, -1.0])) + 1
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_backward_twice_needs_retain_graph():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time|freed"):
        y.backward()


def test_backward_needs_scalar_or_gradient():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(kiln.tensor([1.0, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -3.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 3).backward(kiln.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        kiln.ones(2).sum().backward()


def test_no_grad_records_nothing_and_nests():
    x = kiln.ones(2, requires_grad=True)
    with kiln.no_grad():
        y = x * 2
        with kiln.enable_grad():
            z = x * 2
        assert not kiln.is_grad_enabled()
    assert kiln.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @kiln.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad


def test_detach_shares_storage_and_cuts_graph():
    x = kiln.ones(3, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    a = np.zeros(3, np.float32)
    t = kiln.from_numpy(a)
    t.numpy()[0] = 5
    assert a[0] == 5 and t.numpy() is a


def test_hand_written_sgd_step_updates_in_place():
    w = kiln.tensor([1.0, -2.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    storage = w.detach().numpy()
    with kiln.no_grad():
        w -= 0.1 * w.grad
    assert w.detach().numpy() is storage
    np.testing.assert_allclose(storage, [0.8, -1.6], rtol=1e-6)
    with pytest.raises(RuntimeError, match="in-place"):
        w -= 1.0


def test_grad_assignment_checks_shape():
    x = kiln.ones(3, requires_grad=True)
    x.grad = kiln.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        x.grad = kiln.zeros(4)
    with pytest.raises(TypeError):
        x.grad = np.zeros(3)


# ---------------------------------------------------------------- factories
def test_factories_dtypes_and_shapes():
    assert kiln.tensor([1.0, 2.0]).dtype == np.float32
    assert kiln.tensor([1, 2]).dtype == np.int64
    assert kiln.tensor(np.zeros(2)).dtype == np.float64
    assert kiln.tensor([1, 2], dtype=kiln.float32).dtype == np.float32
    assert kiln.zeros(2, 3).shape == (2, 3) and kiln.zeros((2, 3)).dtype == np.float32
    assert kiln.ones(4).numpy().sum() == 4
    assert kiln.empty(2, 2).shape == (2, 2)
    assert kiln.arange(5).dtype == np.int64 and kiln.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert kiln.arange(0, 1, 0.25).dtype == np.float32
    assert kiln.randn(3, 4).dtype == np.float32 and kiln.rand(3).numpy().max() < 1
    with pytest.raises(ValueError, match="negative"):
        kiln.zeros(-1)
    with pytest.raises(RuntimeError, match="floating point"):
        kiln.tensor([1, 2], requires_grad=True)


def test_tensor_copies_but_from_numpy_shares():
    a = np.ones(3, np.float32)
    t = kiln.tensor(a)
    a[0] = 7
    assert t.numpy()[0] == 1


def test_manual_seed_reproduces_draws():
    kiln.manual_seed(123)
    a = kiln.randn(5).numpy().copy()
    kiln.manual_seed(123)
    b = kiln.randn(5).numpy()
    np.testing.assert_array_equal(a, b)
    state = kiln.get_rng_state()
    c = kiln.rand(4).numpy().copy()
    kiln.set_rng_state(state)
    np.testing.assert_array_equal(c, kiln.rand(4).numpy())
    with pytest.raises(TypeError):
        kiln.manual_seed("x")


def test_item_shape_queries_and_errors():
    t = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.size() == (2, 2) and t.size(1) == 2 and t.dim() == 2 and t.numel() == 4
    assert t.sum().item() == 10.0
    with pytest.raises(RuntimeError, match=r"item: only one-element.*\(2, 2\)"):
        t.item()
    with pytest.raises(RuntimeError, match="invalid"):
        t.reshape(3, 2)
    with pytest.raises(IndexError, match="out of range"):
        t.sum(2)
    with pytest.raises(RuntimeError, match="permutation"):
        t.permute(0, 0)
    with pytest.raises(ValueError, match="cat"):
        kiln.cat([t, kiln.ones(3, 3)], 0)
    with pytest.raises(ValueError, match="stack"):
        kiln.stack([t, kiln.ones(3)])
    with pytest.raises(TypeError, match="cat"):
        kiln.cat([t, np.ones((2, 2))])
    with pytest.raises(RuntimeError, match="cuda|device"):
        t.to("cuda")


def test_comparisons_and_accuracy_idiom():
    logits = kiln.tensor([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]])
    labels = kiln.tensor([1, 0, 0])
    acc = (logits.argmax(1) == labels).float().mean().item()
    assert acc == pytest.approx(2 / 3)


# --------------------------------------------------------------- vs PyTorch
def test_elementwise_reductions_and_views_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 1, 5)).astype(np.float32)
    b = rng.standard_normal((4, 1)).astype(np.float32)
    ka, kb = kiln.tensor(a, requires_grad=True), kiln.tensor(b, requires_grad=True)
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)

    def program(x, y, lib):
        z = (x * y + x / (y * y + 1) - y) ** 2
        z = lib.cat([z, z.exp().clamp(max=3.0)], 1)
        z = z.permute(2, 0, 1).reshape(5, -1)
        m = z.max(1).values.sum() + z.mean(0).abs().sqrt().sum() + z[1:4, ::3].sum()
        return m + z[[0, 2, 2]].sum() * 0.5

    kout, tout = program(ka, kb, kiln), program(ta, tb, torch)
    kout.backward()
    tout.backward()
    np.testing.assert_allclose(kout.item(), tout.item(), rtol=1e-5)
    np.testing.assert_allclose(ka.grad.numpy(), ta.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kb.grad.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_python_number_conversions():
    t = kiln.tensor(2.5)
    assert float(t) == 2.5 and int(kiln.tensor(3)) == 3 and bool(kiln.tensor(1.0))
    assert kiln.float == np.float32 and kiln.double == np.float64 and kiln.long == np.int64
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(kiln.ones(2))


def test_factories_reject_bad_sizes_naming_the_op():
    with pytest.raises(ValueError, match="randperm"):
        kiln.randperm(-1)
    with pytest.raises(ValueError, match="randint"):
        kiln.randint(5, 2, (3,))
    with pytest.raises(ValueError, match="linspace"):
        kiln.linspace(0, 1, -2)
    with pytest.raises(ValueError, match="arange"):
        kiln.arange(0, 1, 1e-20)
