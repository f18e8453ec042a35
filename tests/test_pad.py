"""F.pad against torch.nn.functional.pad: every mode, negative pads, gradients."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck

torch = pytest.importorskip("torch")

CASES = [
    ("constant", (2, 3), (1, 2)), ("constant", (2, 3, 4), (1, 0, -1, 2)),
    ("constant", (3,), (-1, -1)), ("constant", (1, 2, 3, 4), (1, 1, 2, 2, 1, 0)),
    ("reflect", (2, 5), (2, 4)), ("reflect", (1, 2, 4, 5), (1, 3, -1, 2)),
    ("reflect", (2, 2, 3, 3, 4), (1, 1, 2, 2, 0, 1)),
    ("replicate", (2, 3), (4, 1)), ("replicate", (1, 2, 3, 4), (5, 0, 2, -1)),
    ("circular", (2, 4), (4, 2)), ("circular", (1, 1, 3, 4), (1, 4, 3, 0)),
]


@pytest.mark.parametrize("mode, shape, pad", CASES)
def test_forward_and_backward_equal_pytorchs(mode, shape, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    value = 0.5 if mode == "constant" else None
    k = kiln.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    out = F.pad(k, pad, mode=mode, value=value)
    ref = torch.nn.functional.pad(t, pad, mode=mode, value=value)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    g = rng.standard_normal(ref.shape).astype(np.float32)
    out.backward(kiln.tensor(g))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(k.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_gradcheck_float64(mode):
    x = kiln.randn(1, 2, 3, 4, dtype=kiln.float64, requires_grad=True)
    assert gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), mode=mode), (x,))


def test_integer_and_bool_tensors_pad_with_their_dtype():
    out = F.pad(kiln.tensor([[1, 2]]), (1, 1), value=7)
    assert out.dtype == np.int64 and out.tolist() == [[7, 1, 2, 7]]
    assert F.pad(kiln.tensor([True]), (1, 0)).tolist() == [False, True]


@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.pad(x, (1,)), ValueError, "divisible by 2"),
    (lambda x: F.pad(x, (1, 1, 1, 1, 1, 1, 1, 1, 1, 1)), ValueError, "at most twice"),
    (lambda x: F.pad(x, (1.5, 1)), TypeError, "sequence of ints"),
    (lambda x: F.pad(x, (1, 1), mode="wrap"), ValueError, "mode must be one of"),
    (lambda x: F.pad(x, (4, 0, 0, 0), mode="reflect"), ValueError, "less than its size 4"),
    (lambda x: F.pad(x, (5, 0, 0, 0), mode="circular"), ValueError, "more than once"),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), ValueError, "expects a 2-D or 3-D input"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect", value=1.0), ValueError, "constant"),
    (lambda x: F.pad(x, (-3, -2)), ValueError, "negative output size"),
    (lambda x: F.pad(x.numpy(), (1, 1)), TypeError, "pad: expected input to be a kiln.Tensor"),
])
def test_bad_input_names_the_op(call, error, match):
    with pytest.raises(error, match=match):
        call(kiln.ones(1, 2, 3, 4))
