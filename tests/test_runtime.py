"""Thread pool settings, the kernels namespace, and the extension's error translation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import kiln


def test_set_and_get_num_threads():
    before = kiln.get_num_threads()
    try:
        kiln.set_num_threads(1)
        assert kiln.get_num_threads() == 1
        kiln.set_num_threads(3)
        assert kiln.get_num_threads() == 3
    finally:
        kiln.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -2])
def test_set_num_threads_rejects_non_positive(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        kiln.set_num_threads(bad)


def test_kernels_namespace_exposes_documented_kernels():
    names = set(kiln.kernels.__all__)
    expected = {
        "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
        "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
        "batch_norm_forward", "batch_norm_backward",
    }
    assert expected <= names
    for name in expected:
        assert getattr(kiln.kernels, name).__doc__


def test_kernels_reject_wrong_dtype_with_type_error():
    x = np.zeros((1, 1, 4, 4), np.int32)
    w = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match="conv2d"):
        kiln.kernels.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1)


def test_kernels_run_concurrently_from_python_threads():
    # Kernels release the GIL; results from several Python threads must be exact.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    expected = kiln.kernels.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(5):
            results.append(kiln.kernels.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 15
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_conv_weight_gradient_is_bitwise_repeatable_on_several_threads():
    # Per-chunk partial sums are added in chunk order, not in order of completion.
    before = kiln.get_num_threads()
    kiln.set_num_threads(2)
    try:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((4, 6, 28, 28)).astype(np.float32)
        dy = rng.standard_normal((4, 16, 24, 24)).astype(np.float32)
        args = ((16, 6, 5, 5), (1, 1), (0, 0), (1, 1), 1)
        first = kiln.kernels.conv2d_backward_weight(dy, x, *args)
        for _ in range(50):
            np.testing.assert_array_equal(kiln.kernels.conv2d_backward_weight(dy, x, *args), first)
    finally:
        kiln.set_num_threads(before)
