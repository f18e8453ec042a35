"""DLPack: kiln tensors pass to and from NumPy and PyTorch without copies."""

import numpy as np
import pytest

import kiln


def test_numpy_from_kiln_shares_memory():
    t = kiln.arange(12, dtype=kiln.float32).reshape(3, 4)
    a = np.from_dlpack(t)
    assert a.shape == (3, 4) and a.dtype == np.float32
    a[1, 2] = -7.0
    assert t[1, 2].item() == -7.0
    assert t.__dlpack_device__() == (1, 0)


def test_kiln_from_numpy_shares_memory():
    a = np.zeros((2, 5), np.int64)
    t = kiln.from_dlpack(a)
    assert t.shape == (2, 5) and t.dtype == kiln.int64
    t.numpy()[0, 3] = 9
    assert a[0, 3] == 9


def test_torch_round_trip_without_copy():
    torch = pytest.importorskip("torch")
    t = kiln.randn(4, 3)
    pt = torch.from_dlpack(t)
    assert tuple(pt.shape) == (4, 3) and pt.dtype == torch.float32
    assert pt.data_ptr() == t.numpy().ctypes.data
    pt.mul_(2.0)  # writes through torch show in kiln
    np.testing.assert_array_equal(t.numpy(), pt.numpy())
    back = kiln.from_dlpack(pt)
    assert back.numpy().ctypes.data == t.numpy().ctypes.data
    back.numpy()[0, 0] = 123.0
    assert pt[0, 0].item() == 123.0 and t[0, 0].item() == 123.0


def test_kiln_from_torch_non_contiguous_and_dtypes():
    torch = pytest.importorskip("torch")
    src = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    view = src.t()  # strided: DLPack carries the strides
    t = kiln.from_dlpack(view)
    np.testing.assert_array_equal(t.numpy(), view.numpy())
    assert np.shares_memory(t.numpy(), src.numpy())
    for dtype in (torch.int64, torch.uint8, torch.bool, torch.float32):
        k = kiln.from_dlpack(torch.ones(3, dtype=dtype))
        assert k.numpy().dtype == torch.ones(3, dtype=dtype).numpy().dtype


def test_kiln_tensor_from_kiln_tensor_shares():
    t = kiln.ones(3)
    u = kiln.from_dlpack(t)
    u.numpy()[1] = 5
    assert t[1].item() == 5


def test_requires_grad_tensor_refuses_export():
    w = kiln.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        w.__dlpack__()
    np.from_dlpack(w.detach())  # detached: fine


def test_bad_inputs():
    with pytest.raises(TypeError, match="from_dlpack: expected an object with __dlpack__"):
        kiln.from_dlpack([1, 2, 3])
    with pytest.raises(BufferError, match="stream"):
        kiln.ones(2).__dlpack__(stream=1)

    class FakeCuda:
        def __dlpack__(self, **_):
            raise AssertionError("must not be called")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(RuntimeError, match=r"device \(2, 0\)"):
        kiln.from_dlpack(FakeCuda())


def test_jax_both_ways():
    jnp = pytest.importorskip("jax.numpy")
    # JAX to kiln: the imported tensor views JAX's buffer (read-only: JAX arrays are
    # immutable).
    a = jnp.arange(20, dtype=jnp.float32).reshape(4, 5) * 3
    k = kiln.from_dlpack(a)
    assert k.shape == (4, 5) and k.dtype == kiln.float32
    assert k.numpy().ctypes.data == a.unsafe_buffer_pointer()
    np.testing.assert_array_equal(k.numpy(), np.asarray(a))
    # kiln to JAX: XLA's CPU client adopts a buffer without a copy when it is 64-byte
    # aligned (else JAX copies, with equal values).
    raw = np.empty(12 * 4 + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    aligned = raw[start:start + 48].view(np.float32).reshape(3, 4)
    aligned[...] = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = kiln.from_numpy(aligned)
    j = jnp.from_dlpack(t)
    assert j.unsafe_buffer_pointer() == aligned.ctypes.data
    np.testing.assert_array_equal(np.asarray(j), aligned)
    np.testing.assert_array_equal(np.asarray(jnp.from_dlpack(kiln.randn(3, 5) * 0 + 1)),
                                  np.ones((3, 5), np.float32))
