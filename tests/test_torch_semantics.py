"""Answers PyTorch's own op samples found wrong, each pinned against PyTorch's
semantics: type promotion, factory forms and keywords, devices, 0-d edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln._promotion import result_type

torch = pytest.importorskip("torch")


def test_randint_takes_pytorchs_high_size_form():
    kiln.manual_seed(0)
    a = kiln.randint(10, (5,))
    assert a.shape == (5,) and a.dtype == np.int64
    assert 0 <= a.numpy().min() and a.numpy().max() < 10
    b = kiln.randint(3, 10, (2, 2), dtype=kiln.int32)
    assert b.shape == (2, 2) and b.dtype == np.int32 and b.numpy().min() >= 3
    assert kiln.randint(low=2, high=4, size=(3,)).shape == (3,)
    with pytest.raises(TypeError, match="size"):
        kiln.randint(10)


@pytest.mark.parametrize("module", [False, True])
def test_dropout_of_a_0d_tensor_keeps_its_shape_and_backward(module):
    kiln.manual_seed(0)
    x = kiln.tensor(3.0, requires_grad=True)
    y = kiln.nn.Dropout(0.5)(x) if module else F.dropout(x, 0.5)
    assert y.shape == ()
    y.backward()
    assert x.grad.shape == () and float(x.grad) in (0.0, 2.0)
    assert float(y) == 6.0 * float(x.grad) / 2.0


@pytest.mark.parametrize("name", ["relu", "elu", "selu", "leaky_relu"])
def test_activation_gradients_at_nan_follow_pytorch(name):
    values = np.array([np.nan, -1.0, 2.0], np.float32)
    x = kiln.tensor(values, requires_grad=True)
    getattr(F, name)(x).sum().backward()
    t = torch.tensor(values, requires_grad=True)
    getattr(torch.nn.functional, name)(t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_where_with_python_scalars_is_float32():
    cond = kiln.tensor([True, False])
    assert kiln.where(cond, 1.5, 2.5).dtype == np.float32
    assert kiln.where(cond, 1, 2).dtype == np.int64
    assert kiln.where(cond, kiln.ones(2, dtype=kiln.float64), 0.5).dtype == np.float64


_ARRAYS = [np.ones(2, t) for t in (np.float32, np.float64, np.float16, np.int64, np.int32,
                                   np.uint8, np.int8, np.bool_)]
_ZERO_D = [np.array(1, t) for t in (np.float64, np.float32, np.int64, np.uint8, np.bool_)]
_SCALARS = [1.5, 2, True]


def _torch(value):
    return torch.from_numpy(value.copy()) if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize("a, b", [
    (a, b) for a, b in itertools.product(_ARRAYS + _ZERO_D + _SCALARS, repeat=2)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray)])
def test_result_type_is_pytorchs(a, b):
    expected = str(torch.result_type(_torch(a), _torch(b))).replace("torch.", "")
    assert str(result_type(a, b)) == expected


@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "pow"])
@pytest.mark.parametrize("a, b", [
    (np.arange(1, 4, dtype=np.int64), 2.5), (np.arange(1, 4, dtype=np.float32), np.array(2.0)),
    (np.arange(1, 4, dtype=np.int64), np.arange(1, 4, dtype=np.int64)),
    (np.arange(1, 4, dtype=np.uint8), 3), (np.arange(1, 4, dtype=np.float16), np.int64(2))])
def test_binary_ops_promote_as_pytorch(op, a, b):
    import operator

    fn = getattr(operator, op)
    k = fn(kiln.tensor(a), kiln.tensor(b) if isinstance(b, np.ndarray) else b)
    t = fn(_torch(a), _torch(b) if isinstance(b, np.ndarray) else b)
    assert str(k.dtype) == str(t.dtype).replace("torch.", "")
    np.testing.assert_allclose(k.numpy().astype(np.float64), t.numpy().astype(np.float64),
                               rtol=1e-3)


def test_linspace_computes_in_the_requested_dtype():
    start, end = kiln.tensor(0.1, dtype=kiln.float32), kiln.tensor(0.7, dtype=kiln.float32)
    got = kiln.linspace(start, end, 7, dtype=kiln.float64)
    want = torch.linspace(torch.tensor(0.1), torch.tensor(0.7), 7, dtype=torch.float64)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-14)  # float32 math: 1e-8
    for steps in (0, 1, 2, 5, 10, 101):  # both halves; PyTorch's SIMD lanes round apart
        np.testing.assert_allclose(kiln.linspace(-3.3, 7.1, steps).numpy(),
                                   torch.linspace(-3.3, 7.1, steps).numpy(), rtol=2e-7,
                                   atol=1e-6)


def test_cat_of_0d_tensors_names_the_op():
    with pytest.raises(ValueError, match="cat: zero-dimensional tensor"):
        kiln.cat([kiln.tensor(1.0), kiln.tensor(2.0)])


_FACTORIES = {
    "zeros": lambda **kw: kiln.zeros(2, 3, **kw), "ones": lambda **kw: kiln.ones((2, 3), **kw),
    "full": lambda **kw: kiln.full((2,), 1.5, **kw), "empty": lambda **kw: kiln.empty(2, **kw),
    "zeros_like": lambda **kw: kiln.zeros_like(kiln.ones(2), **kw),
    "ones_like": lambda **kw: kiln.ones_like(kiln.ones(2), **kw),
    "full_like": lambda **kw: kiln.full_like(kiln.ones(2), 7.0, **kw),
    "empty_like": lambda **kw: kiln.empty_like(kiln.ones(2), **kw),
    "randn_like": lambda **kw: kiln.randn_like(kiln.ones(2), **kw),
    "rand_like": lambda **kw: kiln.rand_like(kiln.ones(2), **kw),
    "arange": lambda **kw: kiln.arange(0.0, 3.0, **kw),
    "linspace": lambda **kw: kiln.linspace(0, 1, 5, **kw),
    "randn": lambda **kw: kiln.randn(2, 3, **kw), "rand": lambda **kw: kiln.rand(4, **kw),
    "tensor": lambda **kw: kiln.tensor([1.0, 2.0], **kw),
}


@pytest.mark.parametrize("name", sorted(_FACTORIES))
def test_factories_take_device_dtype_and_requires_grad(name):
    make = _FACTORIES[name]
    for device in ("cpu", kiln.device("cpu"), "cpu:0", None):
        t = make(device=device)
        assert t.device == kiln.device("cpu") and str(t.device) == "cpu"
    t = make(dtype=kiln.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
    with pytest.raises(RuntimeError, match=f"{name}: device 'cuda' is not available"):
        make(device="cuda")
    with pytest.raises(RuntimeError, match="device type"):
        make(device="tpu")


def test_integer_factories_take_device_and_refuse_grad():
    assert kiln.randint(5, (2,), device="cpu").device == kiln.device("cpu")
    assert kiln.randperm(4, device=kiln.device("cpu")).dtype == np.int64
    with pytest.raises(RuntimeError, match="randperm: device 'cuda:1'"):
        kiln.randperm(4, device="cuda:1")
    with pytest.raises(RuntimeError, match="floating point"):
        kiln.arange(3, requires_grad=True)


def test_full_infers_its_dtype_from_the_value_as_pytorch():
    assert kiln.full((2,), 1.5).dtype == np.float32
    assert kiln.full((2,), 3).dtype == np.int64
    assert kiln.full((2,), True).dtype == np.bool_


def test_device_objects_behave_like_torchs():
    assert kiln.device("cuda:1") == kiln.device("cuda", 1)
    assert repr(kiln.device("cpu")) == "device(type='cpu')"
    assert str(kiln.device("cuda", 0)) == "cuda:0"
    assert kiln.device(kiln.device("cpu")).type == "cpu"
    assert kiln.ones(2).to("cpu").device == kiln.device("cpu")
    assert kiln.ones(2).to(kiln.device("cpu"), kiln.float64).dtype == np.float64
    assert not kiln.ones(1).is_cuda
    with pytest.raises(RuntimeError, match="to: device 'cuda' is not available"):
        kiln.ones(2).to("cuda")
    with pytest.raises(RuntimeError, match="Module.to: device 'cuda:0'"):
        kiln.nn.Linear(2, 2).to(kiln.device("cuda:0"))
