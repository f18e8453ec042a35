"""In-place ops inside the autograd graph, against PyTorch: gradients after in-place ops
on non-leaf tensors (history rebased onto the op), version-counter errors exactly where
PyTorch raises them, in-place ops on views (the base rebased as PyTorch's CopySlices),
the leaf refusals, ``inplace=True`` activations, and the in-place Tensor methods' values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kiln
import kiln.nn.functional as F

X = np.array([[0.5, -1.0, 2.0], [1.5, -0.2, 0.3]])
W = np.array([0.1, 0.2, 0.3])


def _pair(lib):
    x = lib.tensor(X, dtype=lib.float64, requires_grad=True)
    w = lib.tensor(W, dtype=lib.float64, requires_grad=True)
    return x, w


def _grads(lib, code):
    """Runs ``code`` on fresh x (2, 3) and w (3,) leaves of ``lib``; their gradients."""
    x, w = _pair(lib)
    exec(code, {"lib": lib, "F": F if lib is kiln else torch.nn.functional, "x": x, "w": w})
    return [None if t.grad is None else np.asarray(t.grad.detach().numpy()) for t in (x, w)]


GRADIENT_CASES = {
    "residual add_": "h = x * 2; s = x * w; h += s; (h * h).sum().backward()",
    "old value still used": "h = x * 2; z = h + 1; h.add_(w); (z * 3 + h * h).sum().backward()",
    "chained": "h = x * 1; h.mul_(w).add_(x).sub_(w, alpha=2).div_(w + 2); h.sum().backward()",
    "mul_ saves self's old value": "h = x + 1; h.mul_(w); h.sum().backward()",
    "relu_ then use": "h = x * w; h.relu_(); (h * x).sum().backward()",
    "sigmoid_ tanh_ exp_": "h = x * w; h.sigmoid_(); g = x * 1; g.tanh_(); e = g * 1; "
                           "e.exp_(); (h + e).sum().backward()",
    "pow_ then use": "h = x * 1; h.pow_(2); (h * 2).sum().backward()",
    "tensor exponent pow_": "h = x.abs() + 1; h.pow_(w); h.sum().backward()",
    "sqrt_ log_ abs_ neg_": "h = x * w; h.abs_(); h.add_(1); h.log_(); g = x * w + 2; "
                            "g.sqrt_(); n = g * 1; n.neg_(); (h + n).sum().backward()",
    "clamp_ clamp_min_": "h = x * 2; h.clamp_(-1, 1); g = x * w; g.clamp_min_(0.0); "
                         "(h + g).sum().backward()",
    "addcmul_ addcdiv_": "h = x * 1; h.addcmul_(x, w, value=0.5); h.addcdiv_(x, w + 2, value=2); "
                         "(h * h).sum().backward()",
    "fill_ and zero_ cut the old value": "h = x * 2; g = h * 1; h.fill_(3.0); g.zero_(); "
                                         "(h * x + g).sum().backward()",
    "fill_ from a 0-d tensor": "h = x * 2; h.fill_(w.sum()); (h * x).sum().backward()",
    "masked_fill_": "h = x * w; h.masked_fill_(x > 0, 0.5); (h * h).sum().backward()",
    "copy_ from a tensor": "h = x * 2; h.copy_(w * 3); (h * x).sum().backward()",
    "no-grad tensor becomes a graph tensor": "h = lib.zeros(2, 3, dtype=lib.float64); "
                                              "h.add_(w); (h * x).sum().backward()",
    "inplace activations": "hs = [x * w + k for k in range(8)]; "
                           "F.relu(hs[0], inplace=True); F.leaky_relu(hs[1], 0.2, inplace=True); "
                           "F.elu(hs[2], inplace=True); "
                           "F.hardtanh(hs[3], -0.5, 0.5, inplace=True); "
                           "F.selu(hs[4], inplace=True); F.silu(hs[5], inplace=True); "
                           "F.hardswish(hs[6], inplace=True); F.relu6(hs[7], inplace=True); "
                           "sum((h * x).sum() for h in hs).backward()",
    "inplace activation after a conv and a batch norm": "h = F.conv2d(x.view(1, 1, 2, 3), "
                           "w.view(1, 1, 1, 3), padding=(0, 1)); F.relu(h, inplace=True); "
                           "g = F.batch_norm(h, None, None, training=True); "
                           "F.leaky_relu(g, inplace=True); (g * g).sum().backward()",
    "operators": "h = x * 1; h += w; h -= x; h *= w; h /= (w + 1); (h * x).sum().backward()",
    "a parameter operand": "p = lib.nn.Parameter(w * 1); h = x.detach() * 1; h.mul_(p); "
                           "h.sum().backward(); w.grad = p.grad",
    "no_grad in-place on a leaf": "with lib.no_grad():\n    x.mul_(2)\n(x * w).sum().backward()",
}


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_after_in_place_ops_equal_pytorchs(name):
    _check_gradients(GRADIENT_CASES[name])


def _check_gradients(code):
    for got, want in zip(_grads(kiln, code), _grads(torch, code)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


VERSION_CASES = {
    "sigmoid output changed": "y = x.sigmoid(); y.mul_(2); y.sum().backward()",
    "relu output changed": "y = x.relu(); y.add_(1); y.sum().backward()",
    "exp output changed": "y = x.exp(); y.add_(1); y.sum().backward()",
    "mul input changed": "h = x * 1; z = h * w; h.add_(1); z.sum().backward()",
    "add input changed": "h = x * 1; z = h + w; h.add_(1); (z.sum() + h.sum()).backward()",
    "conv output activated in place": "h = F.conv2d(x.view(1, 1, 2, 3), w.view(1, 1, 1, 3)); "
                                      "F.relu(h, inplace=True); h.sum().backward()",
    "linear output activated in place": "h = F.linear(x, w.view(1, 3)); h.relu_(); "
                                        "h.sum().backward()",
    "relu_ twice": "h = x * 2; h.relu_(); h.relu_(); h.sum().backward()",
    "sigmoid_ then mul_": "h = x * 1; h.sigmoid_(); h.mul_(2); h.sum().backward()",
    "tanh_ then used": "h = x * 1; h.tanh_(); (h * 3).sum().backward()",
    "mul_ by itself": "h = x * 1; h.mul_(h); h.sum().backward()",
    "saved tensor changed through a view": "h = x * 1; z = h * w; v = h.view(-1)\n"
                                           "with lib.no_grad():\n    v.mul_(2)\n"
                                           "z.sum().backward()",
    "saved tensor changed through detach": "y = x.exp(); y.detach().zero_(); y.sum().backward()",
    "saved tensor changed through .data": "y = x.exp(); y.data.zero_(); y.sum().backward()",
    "saved tensor changed under no_grad": "y = x.sigmoid()\nwith lib.no_grad():\n    y.mul_(2)\n"
                                          "y.sum().backward()",
    "saved view changed through its base": "h = x * 1; v = h[0]; z = v * w; h.add_(1); "
                                           "z.sum().backward()",
    "saved base changed through a view": "h = x * 1; z = h * w; h[0].add_(1); "
                                         "z.sum().backward()",
    "saved view changed through another view": "h = x * 1; z = h[0] * w; h[1].mul_(2); "
                                               "z.sum().backward()",
    "unrelated output of a view": "h = x * 1; z = h[0].sigmoid(); h[1].mul_(2); "
                                  "z.sum().backward()",
    "pow_ then mul": "h = x * 1; h.pow_(2); (h * 2).sum().backward()",
}


@pytest.mark.parametrize("name", VERSION_CASES)
def test_version_errors_exactly_where_pytorch_raises(name):
    code = VERSION_CASES[name]
    try:
        _grads(torch, code)
        torch_raises = False
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
        torch_raises = True
    if torch_raises:
        with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[float64 "
                                               r"\[.*\]\].* is at version \d+; expected "
                                               r"version \d+ instead"):
            _grads(kiln, code)
    else:
        _grads(kiln, code)


def test_version_counter_counts_and_is_shared_by_views_and_detach():
    t = kiln.zeros(2, 3)
    assert t._version == 0
    t.add_(1)
    t.mul_(2)
    assert t._version == 2
    v, d, data = t.view(-1), t.detach(), t.data
    v.add_(1)
    d.zero_()
    assert t._version == v._version == d._version == 4
    data.add_(1)  # .data has a counter of its own, as PyTorch's
    assert t._version == 4 and data._version == 1
    np.testing.assert_array_equal(t.numpy(), np.ones((2, 3)))


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    x = kiln.ones(3, requires_grad=True)
    for op in (lambda: x.add_(1), lambda: x.relu_(), lambda: F.relu(x, inplace=True),
               lambda: x.fill_(0), lambda: x.normal_()):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being "
                                               "used in an in-place operation"):
            op()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        x += 1
    np.testing.assert_array_equal(x.detach().numpy(), np.ones(3))
    with kiln.no_grad():
        x.add_(1)  # allowed, as PyTorch
    assert x.is_leaf and x._version == 1


# In-place ops on views of tensors in the graph (PyTorch's CopySlices): the base is
# rebased, the view and every other view of the base see the new history.
VIEW_CASES = {
    "the brief's chain": "h = x * 2; h[:, 0] += 1; h[0].mul_(3); y = h.view(-1); "
                         "y.add_(w.sum()); (h * h).sum().backward()",
    "setitem from a tensor": "h = x * 1; h[:, 1] = w[:2] * 3; (h * x).sum().backward()",
    "setitem of a scalar": "h = x * w; h[1, 2] = 5.0; h[0] = 1; (h * h).sum().backward()",
    "narrow copy_": "h = x * 1; h.narrow(1, 1, 2).copy_(w[1:].expand(2, 2)); "
                    "(h * h).sum().backward()",
    "mask setitem": "h = x * w; h[x > 0] = 0; (h * h).sum().backward()",
    "mask setitem from a 0-d tensor": "h = x * 1; h[x > 0] = w.sum(); (h * x).sum().backward()",
    "index tensor setitem": "h = x * 1; h[:, [0, 2]] = w[:2].view(1, 2) * 2; "
                            "(h * x).sum().backward()",
    "setitem on a view": "h = x * 1; v = h[1]; v[v > 0] = w[0]; (h * x).sum().backward()",
    "select of a transpose": "h = x * 1; t = h.t(); t[1].mul_(w[:2]); (h * x).sum().backward()",
    "other views re-derived": "h = x * 1; a = h[0]; b = h[1]; a.mul_(w); "
                              "(b * a + a).sum().backward()",
    "base changed, view used": "h = x * 1; v = h[0]; h.mul_(2); (v * w).sum().backward()",
    "base changed, view is the root": "h = x * 1; v = h[0]; h.add_(x); "
                                      "v.backward(w * 1)",
    "view of a view": "h = x * 1; v = h.view(-1)[1:5]; v.clamp_(-0.5, 0.5); "
                      "(h * h).sum().backward()",
    "fill_ and zero_ on views": "h = x * 1; h[1].fill_(2.0); h[0, 1:].zero_(); "
                                "(h * x).sum().backward()",
    "fill_ from a 0-d tensor on a view": "h = x * 1; h[:, 0].fill_(w[1]); "
                                         "(h * x).sum().backward()",
    "a tensor without grad made part of the graph": "h = lib.zeros(2, 3, dtype=lib.float64); "
                                                    "v = h[1]; h[0] = w; h[1, :2] = x[0, 1:]; "
                                                    "(h * x).sum().backward(); "
                                                    "assert v.requires_grad",
    "out[:, :c] = conv(...)": "out = lib.zeros(1, 3, 2, 3, dtype=lib.float64); "
                              "out[:, :1] = F.conv2d(x.view(1, 1, 2, 3), w.view(1, 1, 1, 3), "
                              "padding=(0, 1)); out[:, 1:] = x.view(1, 1, 2, 3).expand(1, 2, "
                              "2, 3) * 2; (out * out).sum().backward()",
    "scatter_": "h = x * 1; h.scatter_(1, lib.tensor([[0], [2]]), w[:2].view(2, 1) * 5); "
                "(h * h).sum().backward()",
    "in place on a transpose": "h = x * 1; h.t().add_(w.view(3, 1)); (h * h).sum().backward()",
    "activation in place on a slice": "h = x * w; F.relu(h[:, 1:], inplace=True); "
                                      "(h * x).sum().backward()",
    "unsqueezed view": "h = x * 1; h.unsqueeze(0)[0, 1].sub_(w); (h * h).sum().backward()",
    "narrowed pieces": "h = x * 1; a, b = h.narrow(1, 0, 1), h.narrow(1, 1, 2); a.mul_(w[0]); "
                       "b.add_(w[1:]); (h * h).sum().backward()",
}


@pytest.mark.parametrize("name", VIEW_CASES)
def test_in_place_ops_on_views_give_pytorchs_gradients(name):
    _check_gradients(VIEW_CASES[name])


def test_in_place_ops_on_views_keep_values_and_histories():
    x, w = _pair(kiln)
    h = x * 2
    v = h[0]
    h[:, 0] += 1
    assert h.grad_fn.name == "CopySlices" and h._base is None and v._base is h
    assert v.grad_fn.name == "AsStrided"  # re-derived from h's new history
    h[0].mul_(3)
    y = h.view(-1)
    y.add_(1)
    want = X * 2
    want[:, 0] += 1
    want[0] *= 3
    np.testing.assert_allclose(h.detach().numpy(), want + 1)
    np.testing.assert_allclose(v.detach().numpy(), (want + 1)[0])


@pytest.mark.parametrize("code", [
    "x[0] = 1",
    "x[0].add_(1)",
    "x.view(-1).mul_(2)",
    "x[:, 1:].copy_(w[1:].expand(2, 2))",
    "F.relu(x[0], inplace=True)",
])
def test_in_place_on_a_view_of_a_leaf_is_refused(code):
    x, w = _pair(kiln)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is "
                                           "being used in an in-place operation"):
        exec(code, {"x": x, "w": w, "F": F})
    tx, tw = _pair(torch)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        exec(code, {"x": tx, "w": tw, "F": torch.nn.functional})
    np.testing.assert_array_equal(x.detach().numpy(), X)


def test_setitem_with_a_mask_on_a_leaf_is_refused_as_pytorch():
    x, _ = _pair(kiln)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used"):
        x[x > 0] = 0.0
    with kiln.no_grad():
        x[x > 0] = 0.0
    assert x._version == 1 and (x.detach().numpy() <= 0).all()


@pytest.mark.parametrize("grad", [True, False])
def test_in_place_on_an_expanded_view_is_refused_as_pytorch(grad):
    for lib in (kiln, torch):
        x, w = _pair(lib)
        with lib.set_grad_enabled(grad):
            h = (w * 1).expand(2, 3)
            for operand in (x, 1):
                with pytest.raises(RuntimeError, match="more than one element of the "
                                                       "written-to tensor refers to a single "
                                                       "memory location"):
                    h.add_(operand)


def _views_in_place(a, b):
    h = a * 1
    h[:, 1:] += b[:, :2]
    h.t()[0].mul_(b[0, 2])
    h.narrow(0, 1, 1).copy_(b[1:] * 2)
    h.view(-1)[::2].clamp_(-0.7, 0.7)
    h[0, :2].fill_(b[0, 0])
    h[b > 0] = a[b > 0] * 3
    return h * h


def test_views_written_in_place_pass_gradcheck_in_float64():
    rng = np.random.default_rng(0)
    a = kiln.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    b = kiln.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    assert kiln.autograd.gradcheck(_views_in_place, (a, b))


def test_in_place_on_views_off_the_graph_works():
    t = kiln.zeros(2, 3)
    t[:, 0] += 1
    t.view(-1)[1:3].add_(2)
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 2], [1, 0, 0]])


def test_inplace_activations_return_their_input_and_modify_it():
    for fn in (F.relu, F.leaky_relu, F.elu, F.selu, F.silu, F.hardswish, F.hardtanh, F.relu6):
        x = kiln.tensor(X, dtype=kiln.float32)
        want = fn(x).numpy()
        assert fn(x, inplace=True) is x
        np.testing.assert_allclose(x.numpy(), want)
    for module in (kiln.nn.ReLU(inplace=True), kiln.nn.ReLU6(inplace=True),
                   kiln.nn.LeakyReLU(inplace=True)):
        x = kiln.tensor(X, dtype=kiln.float32)
        assert module(x) is x and (x.numpy() >= np.minimum(X, 0) * 0.01 - 1e-7).all()
    x = kiln.tensor(X, dtype=kiln.float32)
    assert F.dropout(x, 0.5, training=True, inplace=True) is x
    assert set(np.unique(x.numpy() / (2 * X.astype(np.float32)))) <= {0.0, 1.0}


def test_in_place_results_reach_every_alias_of_the_storage():
    """An in-place op on a tensor whose array nothing else refers to takes the op's new
    array as its storage instead of copying it over; wherever anything else shares that
    storage (a view, a detached alias, a NumPy export, an array a backward saved), the
    write must reach it, as PyTorch's does."""
    data = X.astype(np.float32)
    for lib in (kiln, torch):
        x = lib.tensor(data)
        view, alias = x[1], x.detach()
        export = x.numpy()
        x.relu_()
        want = np.maximum(data, 0)
        np.testing.assert_array_equal(view.numpy(), want[1])
        np.testing.assert_array_equal(alias.numpy(), want)
        np.testing.assert_array_equal(export, want)
        alone = lib.tensor(data)
        assert alone.relu_() is alone and alone._version == 1
        np.testing.assert_array_equal(alone.numpy(), np.maximum(data, 0))
        w = lib.tensor(W, dtype=lib.float32, requires_grad=True)
        h = w * 1
        saved = h * w  # mul saves h: the write must reach what its backward reads
        h.relu_()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            saved.sum().backward()


def _cnn(lib):
    nn = lib.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(4)
            self.shortcut = nn.Sequential()

        def forward(self, x):
            out = nn.functional.relu(self.bn1(self.conv1(x)), inplace=True)
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return nn.functional.relu(out, inplace=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
            self.block = Block()
            self.head = nn.Sequential(nn.Linear(4 * 6 * 6, 8), nn.ReLU(inplace=True),
                                      nn.Dropout(0.0, inplace=True), nn.Linear(8, 5))

        def forward(self, x):
            out = self.block(self.stem(x))
            return self.head(out.view(out.size(0), -1))

    return Net()


def test_small_cnn_with_inplace_activations_and_residual_add_matches_pytorch():
    rng = np.random.default_rng(0)
    torch_net, kiln_net = _cnn(torch).double(), _cnn(kiln)
    kiln_net.load_state_dict({k: kiln.tensor(v.detach().numpy().astype(np.float32))
                              for k, v in torch_net.state_dict().items()})
    kiln_net = kiln_net.double()
    x = rng.standard_normal((2, 3, 6, 6))
    y = rng.integers(0, 5, 2)
    torch.nn.functional.cross_entropy(torch_net(torch.tensor(x)), torch.tensor(y)).backward()
    F.cross_entropy(kiln_net(kiln.tensor(x)), kiln.tensor(y)).backward()
    torch_grads = dict(torch_net.named_parameters())
    for name, p in kiln_net.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), torch_grads[name].grad.numpy(),
                                   rtol=1e-9, atol=1e-11, err_msg=name)


def _methods(lib):
    def t(a, dtype=None):
        return lib.tensor(np.array(a), dtype=dtype)
    f, i = lib.float32, lib.int64
    return {
        "add_ alpha": lambda: t(X, f).add_(t(W, f), alpha=2),
        "sub_": lambda: t(X, f).sub_(1.5),
        "mul_ broadcast": lambda: t(X, f).mul_(t(W, f)),
        "div_": lambda: t(X, f).div_(t(W, f)),
        "div_ floor": lambda: t(X, f).div_(0.7, rounding_mode="floor"),
        "div_ trunc": lambda: t(X, f).div_(-0.7, rounding_mode="trunc"),
        "int div_ floor": lambda: t([7, -7, 5], i).div_(2, rounding_mode="floor"),
        "float64 operand into float32": lambda: t(X, f).add_(t(W, lib.float64)),
        "int += int": lambda: t([1, 2], i).add_(3),
        "addcmul_": lambda: t(X, f).addcmul_(t(X, f), t(W, f), value=-0.5),
        "addcdiv_": lambda: t(X, f).addcdiv_(t(X, f), t(W, f), value=3),
        "sqrt_": lambda: t(np.abs(X), f).sqrt_(),
        "exp_ log_": lambda: t(X, f).exp_().log_(),
        "abs_ neg_": lambda: t(X, f).abs_().neg_(),
        "pow_": lambda: t(X, f).pow_(2),
        "clamp_": lambda: t(X, f).clamp_(-0.5, 1.0),
        "clamp_min_": lambda: t(X, f).clamp_min_(0.25),
        "clamp_max_": lambda: t(X, f).clamp_max_(0.25),
        "relu_ sigmoid_ tanh_": lambda: (t(X, f).relu_(), t(X, f).sigmoid_(), t(X, f).tanh_()),
        "masked_fill_": lambda: t(X, f).masked_fill_(t(X) > 0, -1.0),
        "masked_fill_ 0-d tensor": lambda: t(X, f).masked_fill_(t(X) < 0, t(2.5, f)),
        "fill_ zero_": lambda: (t(X, f).fill_(7), t(X, i).zero_()),
        "copy_ broadcast and cast": lambda: t(X, i).copy_(t(W * 10, f)),
    }


@pytest.mark.parametrize("name", _methods(kiln))
def test_in_place_methods_values_equal_pytorchs(name):
    def run(lib):
        out = _methods(lib)[name]()
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]
    for got, want in zip(run(kiln), run(torch)):
        assert got.dtype == np.dtype(str(want.dtype))
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_in_place_methods_return_self_and_bump_the_version():
    t = kiln.tensor(X, dtype=kiln.float32)
    for step, op in enumerate([lambda: t.add_(1), lambda: t.relu_(), lambda: t.clamp_(0, 1),
                               lambda: t.fill_(2), lambda: t.normal_(), lambda: t.uniform_()],
                              start=1):
        assert op() is t and t._version == step


def test_in_place_dtype_and_shape_errors_as_pytorch():
    with pytest.raises(RuntimeError, match="result type float.* can't be cast to the desired "
                                           "output type int64"):
        kiln.tensor([1, 2]).add_(0.5)
    with pytest.raises(RuntimeError, match="result type float.* can't be cast"):
        kiln.tensor([1, 2]).div_(2)
    with pytest.raises(RuntimeError, match=r"output with shape \(3,\) doesn't match the "
                                           r"broadcast shape \(2, 3\)"):
        kiln.zeros(3).add_(kiln.zeros(2, 3))
    h = kiln.ones(3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"output with shape \(3,\) doesn't match"):
        h.mul_(kiln.ones(2, 3))
    with pytest.raises(RuntimeError, match="only supports 0-dimension"):
        kiln.zeros(3).fill_(kiln.zeros(2))
    with pytest.raises(TypeError, match="expected a bool tensor as mask"):
        kiln.zeros(3).masked_fill_(kiln.zeros(3), 1.0)
    with pytest.raises(ValueError, match="rounding_mode"):
        kiln.zeros(3).div_(2, rounding_mode="round")
    with pytest.raises(TypeError, match="expected a floating point tensor"):
        kiln.zeros(3, dtype=kiln.int64).normal_()
    with pytest.raises(RuntimeError, match="std >= 0"):
        kiln.zeros(3).normal_(0, -1)


def test_normal_and_uniform_fill_with_the_seeded_stream():
    kiln.manual_seed(3)
    a = kiln.zeros(1000, dtype=kiln.float64).normal_(2.0, 0.5)
    b = kiln.zeros(1000).uniform_(-1, 3)
    kiln.manual_seed(3)
    np.testing.assert_array_equal(kiln.zeros(1000, dtype=kiln.float64).normal_(2.0, 0.5).numpy(),
                                  a.numpy())
    assert abs(a.numpy().mean() - 2.0) < 0.1 and abs(a.numpy().std() - 0.5) < 0.05
    assert b.dtype == kiln.float32 and b.numpy().min() >= -1 and b.numpy().max() < 3
    # on a graph tensor: the old value gets no gradient
    x = kiln.ones(4, requires_grad=True)
    h = x * 2
    h.normal_()
    (h * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), h.detach().numpy())


def test_onnx_export_follows_inplace_activations(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    kiln.manual_seed(0)
    model = kiln.nn.Sequential(kiln.nn.Conv2d(3, 4, 3, padding=1), kiln.nn.BatchNorm2d(4),
                               kiln.nn.ReLU(inplace=True), kiln.nn.Conv2d(4, 4, 1),
                               kiln.nn.Hardtanh(-0.5, 0.5, inplace=True)).eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    path = tmp_path / "m.onnx"
    kiln.onnx.export(model, kiln.tensor(x), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model(kiln.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    assert got.min() >= -0.5 and got.max() <= 0.5
