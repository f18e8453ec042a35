"""Function.apply's contract (csrc/bindings/tape.cpp): what forward receives, what the
outputs are, what is recorded on the tape, and that errors leak nothing."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest

import kiln
from kiln.autograd import Function
from kiln.autograd import function as tape


class Scale(Function):
    """y = x * k for a Python scalar k; two outputs when ``both``: (x * k, x + k)."""

    @staticmethod
    def forward(ctx, x, k, both):
        ctx.k = k  # an attribute of the op's own: Context takes any
        ctx.seen = (type(x), ctx.needs_input_grad, ctx.backend, ctx.saved_tensors)
        return (x * k, x + k) if both else x * k

    @staticmethod
    def backward(ctx, *grads):
        return sum(g * ctx.k if i == 0 else g for i, g in enumerate(grads)), None, None


def test_forward_sees_arrays_the_context_and_the_backend():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = Scale.apply(x, 3.0, False)
    kind, needs, backend, saved = y._node.ctx.seen
    assert kind is np.ndarray and needs == (True, False, False) and saved == ()
    assert backend is kiln.backends.get("cpu")
    assert isinstance(y, kiln.Tensor) and y.device == kiln.device("cpu")
    np.testing.assert_array_equal(y.detach().numpy(), [3.0, 6.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_several_outputs_each_carry_their_index():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    a, b = Scale.apply(x, 2.0, True)
    assert a._node is b._node and (a._output_index, b._output_index) == (0, 1)
    (a.sum() + b.sum()).backward()  # d/dx (2x + x + 2) = 3
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_nothing_is_recorded_without_grad():
    x = kiln.tensor([1.0, 2.0])
    y = Scale.apply(x, 2.0, False)
    assert y._node is None and not y.requires_grad
    w = kiln.tensor([1.0], requires_grad=True)
    with kiln.no_grad():
        z = Scale.apply(w, 2.0, False)
    assert z._node is None and not z.requires_grad


def test_a_parameter_counts_as_a_tensor():
    p = kiln.nn.Parameter(kiln.tensor([1.0, -1.0]))
    y = Scale.apply(p, 2.0, False)
    assert y.requires_grad and type(y) is kiln.Tensor
    y.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])


def test_a_non_array_result_becomes_an_array():
    class Total(Function):
        @staticmethod
        def forward(ctx, x):
            return float(x.sum())  # a Python float

    out = Total.apply(kiln.tensor([1.0, 2.0]))
    assert isinstance(out._data, np.ndarray) and out.shape == () and out.item() == 3.0


def test_non_differentiable_outputs_stay_off_the_tape():
    x = kiln.tensor([[1.0, 5.0], [7.0, 2.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.requires_grad and not indices.requires_grad and indices._node is None


def test_many_arguments_and_outputs():
    class Many(Function):
        @staticmethod
        def forward(ctx, *xs):
            return tuple(x + i for i, x in enumerate(xs))

        @staticmethod
        def backward(ctx, *grads):
            return grads

    xs = [kiln.tensor([float(i)], requires_grad=True) for i in range(20)]
    outs = Many.apply(*xs)
    assert len(outs) == 20 and [o._output_index for o in outs] == list(range(20))
    sum(o.sum() for o in outs).backward()
    assert all(x.grad.item() == 1.0 for x in xs)


def test_an_error_in_forward_propagates_and_leaks_nothing():
    class Boom(Function):
        @staticmethod
        def forward(ctx, x):
            raise ValueError("boom: shape (2,)")

    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    gc.collect()
    before = sys.getrefcount(x), sys.getrefcount(x._data)
    for _ in range(100):
        with pytest.raises(ValueError, match="boom"):
            Boom.apply(x)
    gc.collect()
    assert (sys.getrefcount(x), sys.getrefcount(x._data)) == before


def test_outputs_and_graph_are_freed():
    x = kiln.tensor(np.ones(4), requires_grad=True)
    gc.collect()
    before = sys.getrefcount(x)
    y = Scale.apply(x, 2.0, False)
    assert sys.getrefcount(x) == before + 1  # held by the node's inputs
    out = weakref.ref(y)
    del y
    gc.collect()
    assert out() is None and sys.getrefcount(x) == before


def test_observers_see_each_call_and_may_remove_themselves():
    seen = []

    def observer(function, args, outputs):
        seen.append((function, args, outputs))
        tape.apply_observers.remove(observer)

    tape.apply_observers.append(observer)
    try:
        x = kiln.tensor([1.0])
        y = Scale.apply(x, 2.0, False)
        Scale.apply(x, 2.0, False)
    finally:
        if observer in tape.apply_observers:
            tape.apply_observers.remove(observer)
    assert len(seen) == 1
    function, args, outputs = seen[0]
    assert function is Scale and args == (x, 2.0, False) and outputs == (y,)


def test_mixing_devices_is_an_error_naming_both():
    x = kiln.tensor([1.0])
    y = kiln.tensor([1.0])
    y._device = kiln.device("cuda")
    with pytest.raises(RuntimeError, match=r"Scale: expected all tensors to be on the same "
                                           r"device, but found at least two devices, cpu and "
                                           r"cuda"):
        Scale.apply(x, y, False)


def test_edges_are_leaves_or_the_node_and_index_taken_when_the_op_ran():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    a, b = Scale.apply(x, 2.0, True)
    y = Scale.apply(b, 3.0, False)
    assert y._node.inputs == [(a._node, 1), None, None]
    assert Scale.apply(x, 1.0, False)._node.inputs[0] is x  # a leaf: the tensor itself
    # a later rebase of b (an in-place op) does not move the recorded edge
    b.add_(1)
    assert y._node.inputs[0] == (a._node, 1) and b._node is not a._node


class Keep(Function):
    """y = x * 2, saving the input and the output (a 3-tuple with a non-array)."""

    @staticmethod
    def forward(ctx, x):
        y = x * 2
        ctx.save_for_backward(x, y, "tag")
        return y

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_saved_tensor_arrays_record_their_versions():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = Keep.apply(x)
    entries = y._node.ctx._saved_versions
    assert entries == (0, x._version_counter, 0, 1, y._version_counter, 0)
    assert Scale.apply(x, 2.0, False)._node.ctx._saved_versions == ()  # nothing saved
    with kiln.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match=r"\[float32 \[2\]\], which is saved by "
                                           r"KeepBackward, is at version 1; expected version 0"):
        y.sum().backward()


def test_views_share_the_version_counter_of_their_base():
    x = kiln.tensor(np.zeros((2, 3)))
    v = x.view(6)
    row = x[1]
    fresh = x + 1
    assert v._version_counter is x._version_counter is row._version_counter
    assert v._base is x and row._base is x and x[0][1:]._base is x
    assert fresh._version_counter is None and fresh._base is None
    row.add_(1)
    assert x._version == v._version == 1


class Fork(Function):
    """(x, x) -> x + x, whose backward hands one gradient array to both inputs."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Hold(Function):
    """y = x; backward returns the incoming gradient itself and keeps it."""

    kept: list = []

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        Hold.kept.append(grad)
        return grad


def test_gradients_summed_in_place_only_where_nothing_else_sees_them():
    # The engine adds a node's gradients in place once it holds the only reference;
    # an array that a backward handed to two inputs, that a backward kept, or that the
    # caller passed to backward, is summed into a new array instead.
    x = kiln.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 1.0
    out = Fork.apply(h, h) + Hold.apply(h) * 2.0 + Fork.apply(Hold.apply(h), h)
    seed = np.array([1.0, 10.0, 100.0])
    Hold.kept.clear()
    out.backward(seed)
    np.testing.assert_array_equal(x.grad.numpy(), 6.0 * seed)
    np.testing.assert_array_equal(seed, [1.0, 10.0, 100.0])
    np.testing.assert_array_equal(Hold.kept[0], seed)
    np.testing.assert_array_equal(Hold.kept[1], 2.0 * seed)
