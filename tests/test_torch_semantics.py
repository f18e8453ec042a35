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


# ---------------------------------------------------------------- torch.* twins
def _twin_samples():
    """One sample per torch.* function of kiln's twins: (name, args, kwargs), tensors as
    float64 arrays (int64 and bool arrays stay as they are)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4))
    pos = rng.uniform(0.5, 2.0, (3, 4))
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    mask = rng.random((3, 4)) < 0.5
    return [
        ("flatten", (rng.standard_normal((2, 3, 4)), 1), {}),
        ("max", (x,), {}), ("max", (x, 1), {"keepdim": True}), ("max", (x, pos), {}),
        ("min", (x, 0), {}), ("topk", (x, 2), {"dim": 0}),
        ("sort", (x,), {"descending": True}), ("argsort", (x, 0), {}),
        *[(name, (x, pos), {}) for name in ("eq", "ne", "lt", "le", "gt", "ge")],
        ("eq", (x, 0.5), {}),
        ("all", (mask, 1), {}), ("any", (mask,), {}),
        ("sum", (x, 1), {"keepdim": True}), ("sum", (x,), {"dtype": np.float32}),
        ("mean", (x, (0, 1)), {}), ("prod", (x, 1), {}),
        ("std", (x, 1), {}), ("var", (x,), {"correction": 0}),
        ("argmax", (x, 1), {}), ("argmin", (x,), {}),
        ("exp", (x,), {}), ("log", (pos,), {}), ("sqrt", (pos,), {}), ("abs", (x,), {}),
        ("clamp", (x, -0.5, 0.5), {}), ("clip", (x,), {"min": 0.0}),
        ("softmax", (x, 1), {}), ("log_softmax", (x,), {"dim": 0}),
        ("sigmoid", (x,), {}), ("tanh", (x,), {}), ("relu", (x,), {}),
        ("chunk", (x, 3, 1), {}), ("split", (x, [1, 3], 1), {}),
        ("squeeze", (x[:, :1], 1), {}), ("unsqueeze", (x, -1), {}),
        ("transpose", (x, 0, 1), {}), ("permute", (x, (1, 0)), {}),
        ("reshape", (x, (2, 6)), {}), ("mm", (x, pos.T.copy()), {}),
        ("bmm", (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 2))), {}),
        ("numel", (x,), {}), ("gather", (x, 1, idx), {}),
        ("index_select", (x, 0, np.array([2, 0])), {}),
        ("masked_fill", (x, mask, 0.0), {}), ("cumsum", (x, 1), {}),
        ("logsumexp", (x, 1), {}), ("norm", (x,), {}), ("norm", (x, 1, 1), {}),
        ("t", (x,), {}), ("narrow", (x, 1, 1, 2), {}),
        ("isnan", (np.array([np.nan, 1.0]),), {}), ("isinf", (np.array([np.inf, 1.0]),), {}),
        ("isfinite", (np.array([np.inf, np.nan, 1.0]),), {}),
        ("allclose", (x, x + 1e-9), {}), ("equal", (x, x.copy()), {}),
        ("sign", (x,), {}), ("floor", (x,), {}), ("ceil", (x,), {}),
        ("round", (x * 10,), {}), ("round", (x,), {"decimals": 1}),
        ("pow", (pos, 1.5), {}), ("neg", (x,), {}), ("negative", (x,), {}),
        ("einsum", ("ij,kj->ik", x, pos), {}),
        ("square", (x,), {}), ("clone", (x,), {}), ("scatter", (x, 1, idx[:, :1], 9.0), {}),
    ]


def _as(lib, value):
    if isinstance(value, np.ndarray):
        return kiln.tensor(value) if lib == "kiln" else torch.from_numpy(value)
    if isinstance(value, np.dtype) or value is np.float32:
        return kiln.float32 if lib == "kiln" else torch.float32
    return value


def _flat(value):
    """An output as a list of NumPy arrays and plain values."""
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _flat(item)]
    if isinstance(value, (kiln.Tensor, torch.Tensor)):
        return [np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor)
                           else value.numpy())]
    return [value]


@pytest.mark.parametrize("name, args, kwargs", _twin_samples(),
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(_twin_samples())])
def test_torch_twins_exist_and_match_pytorch(name, args, kwargs):
    got = getattr(kiln, name)(*[_as("kiln", a) for a in args],
                              **{k: _as("kiln", v) for k, v in kwargs.items()})
    want = getattr(torch, name)(*[_as("torch", a) for a in args],
                                **{k: _as("torch", v) for k, v in kwargs.items()})
    assert type(got).__name__ == type(want).__name__ or isinstance(got, kiln.Tensor)
    got, want = _flat(got), _flat(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.dtype)
            tol = 1e-6 if g.dtype == np.float32 else 1e-12  # summation order differs
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
        else:
            assert g == w


def test_every_twin_the_issue_lists_is_exported():
    listed = ("flatten max min topk sort argsort eq ne lt le gt ge all any sum mean prod std "
              "var argmax argmin exp log sqrt abs clamp clip softmax log_softmax sigmoid tanh "
              "relu chunk split squeeze unsqueeze transpose permute reshape mm bmm numel "
              "gather index_select masked_fill cumsum logsumexp norm t narrow isnan isinf isfinite "
              "allclose equal sign floor ceil round pow neg square einsum").split()
    tested = {name for name, _, _ in _twin_samples()}
    assert set(listed) <= tested
    for name in listed:
        assert callable(getattr(kiln, name)) and name in kiln.__all__


def test_twins_name_the_op_for_a_non_tensor_input():
    with pytest.raises(TypeError, match=r"topk: input must be a Tensor, got list"):
        kiln.topk([1.0, 2.0], 1)


# ---------------------------------------------------------------- results with ties
def test_topk_on_ties_gives_pytorchs_values_and_indices_of_those_values():
    values = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    for k, largest in ((2, True), (3, False), (5, True)):
        got = kiln.tensor(values).topk(k, largest=largest)
        want = torch.from_numpy(values).topk(k, largest=largest)
        np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
        picked = np.take_along_axis(values, got.indices.numpy(), axis=1)
        np.testing.assert_array_equal(picked, got.values.numpy())
        assert all(len(set(row)) == k for row in got.indices.numpy().tolist())


def test_max_and_min_along_a_dim_are_namedtuples_and_global_without_dim():
    values = np.array([[1.0, 5.0, 5.0], [2.0, -1.0, -1.0]], np.float32)
    x, t = kiln.tensor(values), torch.from_numpy(values)
    got, want = x.max(dim=1), t.max(dim=1)
    assert type(got).__name__ == "max" and got._fields == ("values", "indices")
    np.testing.assert_array_equal(got.indices.numpy(), want.indices.numpy())
    got = x.min(1, keepdim=True)
    np.testing.assert_array_equal(got.indices.numpy(), t.min(1, keepdim=True).indices.numpy())
    assert float(x.max()) == 5.0 and x.min().shape == ()
    v, i = kiln.sort(x, stable=True, descending=True)
    np.testing.assert_array_equal(
        i.numpy(), torch.sort(t, stable=True, descending=True).indices.numpy())


# ---------------------------------------------------------------- off-tape methods
def test_comparisons_and_predicates_have_no_gradient():
    x = kiln.randn(3, requires_grad=True)
    for out in (x.eq(0.0), x.ge(x), x.isnan(), x.all(), x.any(0), x.argsort()):
        assert not out.requires_grad and out.grad_fn is None


def test_all_and_any_keep_uint8_as_pytorch():
    values = np.array([[1, 0], [2, 3]], np.uint8)
    assert kiln.tensor(values).all().dtype == np.uint8
    assert kiln.tensor(values).any(1).dtype == np.uint8
    assert kiln.tensor(values.astype(np.int64)).all(1).dtype == np.bool_
    assert kiln.tensor(values).all().tolist() == torch.from_numpy(values).all().tolist()


def test_allclose_and_equal_follow_pytorch():
    a = np.array([1.0, np.nan], np.float32)
    x, t = kiln.tensor(a), torch.from_numpy(a)
    assert x.allclose(x) is t.allclose(t) is False
    assert x.allclose(x, equal_nan=True) is True
    assert kiln.equal(kiln.ones(2), kiln.ones(3)) is torch.equal(torch.ones(2), torch.ones(3))
    with pytest.raises(RuntimeError, match=r"allclose: float64 did not match float32"):
        x.allclose(x.double())


def test_scatter_in_place_matches_pytorch_and_refuses_a_leaf_that_requires_grad():
    index = np.array([[2, 0], [1, 3]])
    src = np.arange(4.0, dtype=np.float32).reshape(2, 2)
    x = kiln.zeros(2, 4)
    t = torch.zeros(2, 4)
    assert x.scatter_(1, kiln.tensor(index), kiln.tensor(src)) is x
    t.scatter_(1, torch.from_numpy(index), torch.from_numpy(src))
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    x.scatter_(0, kiln.tensor([[1, 0, 1, 0]]), 7.5)
    t.scatter_(0, torch.tensor([[1, 0, 1, 0]]), 7.5)
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    with pytest.raises(RuntimeError, match="scatter_"):
        kiln.zeros(2, 4, requires_grad=True).scatter_(1, kiln.tensor(index), 1.0)


def test_size_of_a_dim_counts_from_the_end_and_names_the_op():
    x = kiln.zeros(2, 3, 4)
    assert x.size(-1) == 4 and x.size(0) == 2 and x.size() == (2, 3, 4)
    with pytest.raises(IndexError, match=r"size: dimension 3 out of range"):
        x.size(3)
    with pytest.raises(IndexError, match="no dimensions"):
        kiln.tensor(1.0).size(0)


def test_conversions_and_queries_match_pytorch():
    a = np.array([[1.7, -2.2], [0.0, 3.5]], np.float32)
    x, t = kiln.tensor(a), torch.from_numpy(a)
    for name in ("float", "double", "long", "int", "bool", "half"):
        got, want = getattr(x, name)().numpy(), getattr(t, name)().numpy()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert x.type(kiln.int64).tolist() == t.type(torch.int64).tolist()
    assert x.tolist() == t.tolist() and x[0, 1].item() == t[0, 1].item()
    assert (x.numel(), x.dim(), x.is_cuda) == (t.numel(), t.dim(), t.is_cuda)
    assert x.view_as(kiln.zeros(4)).shape == (4,) and x.data.grad_fn is None


# ---------------------------------------------------------------- default dtype, Tensor()
def test_default_dtype_changes_factories_and_python_floats_as_pytorch():
    assert kiln.get_default_dtype() == np.float32
    kiln.set_default_dtype(kiln.float64)
    try:
        assert kiln.get_default_dtype() == np.float64
        for t in (kiln.tensor([1.5]), kiln.zeros(2), kiln.rand(2), kiln.randn(2),
                  kiln.arange(0.0, 1.0, 0.5), kiln.linspace(0, 1, 3), kiln.full((2,), 1.5),
                  kiln.Tensor([1, 2]), kiln.Tensor(2)):
            assert t.dtype == np.float64
        assert (kiln.tensor([1, 2]) * 2.5).dtype == np.float64
        for t in (kiln.tensor([1, 2]) / 2, kiln.tensor([1, 2]).exp(),
                  kiln.tensor([1, 2]).sigmoid()):
            assert t.dtype == np.float64
        assert kiln.tensor([1, 2]).dtype == np.int64
    finally:
        kiln.set_default_dtype(kiln.float32)
    assert kiln.tensor([1.5]).dtype == np.float32
    with pytest.raises(TypeError, match="set_default_dtype.*int64"):
        kiln.set_default_dtype(kiln.int64)


def test_legacy_tensor_constructor_gives_float32_as_pytorch():
    assert kiln.Tensor([1, 2]).dtype == torch.Tensor([1, 2]).numpy().dtype == np.float32
    assert kiln.Tensor([1, 2]).tolist() == [1.0, 2.0]
    assert kiln.Tensor((True, False)).tolist() == torch.Tensor((True, False)).tolist()
    assert kiln.Tensor(2, 3).shape == tuple(torch.Tensor(2, 3).shape)
    assert kiln.Tensor(2, 3).dtype == np.float32
    assert kiln.Tensor().shape == tuple(torch.Tensor().shape) == (0,)
    shared = np.arange(3)  # kiln's own form: an array is wrapped as it is, shared
    assert kiln.Tensor(shared).numpy() is shared
    with pytest.raises(TypeError, match="Tensor: expected"):
        kiln.Tensor("abc")


def test_legacy_tensor_types_make_and_recognise_their_dtype():
    for name in ("FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor",
                 "ByteTensor", "HalfTensor"):
        got, want = getattr(kiln, name)([1, 0, 2]), getattr(torch, name)([1, 0, 2])
        assert got.dtype == want.numpy().dtype and got.tolist() == want.tolist()
        assert isinstance(got, getattr(kiln, name)) and isinstance(got, kiln.Tensor)
        assert got.type() == want.type()
    assert kiln.FloatTensor(2, 3).shape == (2, 3)
    assert not isinstance(kiln.zeros(2), kiln.LongTensor)
    x = kiln.tensor([1.5, 2.5])
    assert x.type(kiln.LongTensor).dtype == np.int64
    assert x.type("torch.DoubleTensor").dtype == np.float64
    assert x.type(kiln.int32).dtype == np.int32


# ---------------------------------------------------------------- Generator, inference_mode
def test_generator_streams_are_their_own_and_replay_from_a_state():
    g = kiln.Generator().manual_seed(5)
    assert g.initial_seed() == 5
    kiln.manual_seed(0)
    first = kiln.randn(4, generator=g)
    global_draw = kiln.randn(2)
    kiln.manual_seed(0)
    assert np.array_equal(kiln.randn(2).numpy(), global_draw.numpy())  # not advanced by g
    again = kiln.randn(4, generator=kiln.Generator().manual_seed(5))
    assert np.array_equal(again.numpy(), first.numpy())
    state = g.get_state()
    a = (kiln.rand(3, generator=g), kiln.randint(0, 10, (3,), generator=g),
         kiln.randperm(5, generator=g))
    g.set_state(state)
    b = (kiln.rand(3, generator=g), kiln.randint(0, 10, (3,), generator=g),
         kiln.randperm(5, generator=g))
    for x, y in zip(a, b):
        assert np.array_equal(x.numpy(), y.numpy())
    seed = g.seed()
    assert isinstance(seed, int) and g.initial_seed() == seed
    with pytest.raises(TypeError, match="generator: expected a kiln.Generator"):
        kiln.randn(2, generator=np.random.default_rng(0))


def test_inference_mode_records_nothing_as_context_and_decorator():
    x = kiln.ones(2, requires_grad=True)
    with kiln.inference_mode():
        assert not (x * 2).requires_grad
    with kiln.inference_mode(False):
        assert (x * 2).requires_grad

    @kiln.inference_mode()
    def called(t):
        return t * 2

    @kiln.inference_mode
    def bare(t):
        return t * 2

    assert not called(x).requires_grad and not bare(x).requires_grad
    assert kiln.is_grad_enabled()


def test_tensor_copies_and_as_tensor_shares_as_pytorch():
    for lib in (kiln, torch):
        a = np.arange(4.0)
        copied, shared = lib.tensor(a), lib.as_tensor(a)
        converted = lib.as_tensor(a, dtype=lib.float32)
        a[0] = 9.0
        assert copied[0].item() == 0.0 and shared[0].item() == 9.0
        assert converted[0].item() == 0.0 and converted.dtype == lib.float32
        x = lib.ones(2, requires_grad=True)
        assert lib.as_tensor(x) is x
        assert lib.as_tensor(x, dtype=lib.float64).grad_fn is not None
        assert lib.as_tensor([1, 2.0]).dtype == lib.float32
        assert lib.as_tensor(3).dtype == lib.int64


def test_channels_last_lays_4d_tensors_out_as_pytorch():
    for lib in (kiln, torch):
        x = lib.ones(2, 3, 4, 5)
        y = x.contiguous(memory_format=lib.channels_last)
        assert y.is_contiguous(memory_format=lib.channels_last) and not y.is_contiguous()
        assert x.is_contiguous() and not x.is_contiguous(memory_format=lib.channels_last)
        assert y.contiguous(memory_format=lib.channels_last) is y
        assert y.double(memory_format=lib.contiguous_format).is_contiguous()
    assert kiln.ones(2, 3, 4, 5).contiguous(memory_format=kiln.channels_last)._data.strides \
        == (240, 4, 60, 12)
