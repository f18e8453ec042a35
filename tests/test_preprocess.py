"""Preprocessing fitted on training data: each step against its NumPy formula, the
state_dict round trip (statistics from the training set applied to the test set),
kind preservation (array/Tensor) and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.data.preprocess import (
    PCA,
    ZCA,
    StandardizeChannels,
    SubtractChannelMean,
    SubtractMeanImage,
)

RNG = np.random.default_rng(0)


def images(n: int = 40, shape: tuple[int, ...] = (3, 4, 5), dtype=np.float32) -> np.ndarray:
    x = RNG.standard_normal((n, *shape)) * np.arange(1, shape[0] + 1).reshape(
        (-1,) + (1,) * (len(shape) - 1)) + 7
    if dtype == np.uint8:
        return np.clip(x * 20 + 100, 0, 255).astype(np.uint8)
    return x.astype(dtype)


def close(a, b, tol=2e-5):
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_mean_image(dtype):
    train, test = images(dtype=dtype), images(7, dtype=dtype)
    step = SubtractMeanImage().fit(train)
    out = step(test)
    assert out.dtype == np.float32 and out.shape == test.shape
    close(out, test - train.astype(np.float64).mean(0))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_channel_mean_and_std(dtype):
    train, test = images(dtype=dtype), images(5, dtype=dtype)
    t64 = train.astype(np.float64)
    mean = t64.mean((0, 2, 3)).reshape(1, 3, 1, 1)
    std = t64.std((0, 2, 3)).reshape(1, 3, 1, 1)
    close(SubtractChannelMean().fit(train)(test), test - mean)
    close(StandardizeChannels().fit(train)(test), (test - mean) / std)
    standardized = StandardizeChannels().fit_transform(train)
    close(standardized.mean((0, 2, 3)), np.zeros(3), 1e-5)
    close(standardized.std((0, 2, 3)), np.ones(3), 1e-5)


def test_channel_stats_over_many_chunks():
    train = images(2500, (2, 3, 3))  # more than one 1,024-sample chunk
    t64 = train.astype(np.float64)
    state = StandardizeChannels().fit(train).state_dict()
    close(state["mean"], t64.mean((0, 2, 3)), 1e-6)
    close(state["std"], t64.std((0, 2, 3)), 1e-6)


def test_constant_channel_maps_to_zero():
    train = images()
    train[:, 1] = 5.0
    out = StandardizeChannels().fit(train)(train)
    assert np.all(np.isfinite(out)) and np.all(out[:, 1] == 0)


def numpy_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = x.reshape(len(x), -1).astype(np.float64)
    mean = flat.mean(0)
    cov = (flat - mean).T @ (flat - mean) / len(flat)
    u, s, _ = np.linalg.svd(cov)  # the slides' recipe
    return mean, u, s


def aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a with each column's sign flipped to agree with b (eigenvectors have no sign)."""
    return a * np.sign((a * b).sum(0, keepdims=True))


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_numpy(whiten):
    train, test = images(200, (2, 3, 3)), images(9, (2, 3, 3))
    mean, u, s = numpy_pca(train)
    k = 5
    step = PCA(k, whiten=whiten).fit(train)
    z = step(test)
    assert z.shape == (9, k) and z.dtype == np.float32
    expected = (test.reshape(9, -1) - mean) @ u[:, :k]
    if whiten:
        expected = expected / np.sqrt(s[:k] + 1e-5)
    close(aligned(z, expected), expected, 1e-4)
    assert step.explained_variance_ratio == pytest.approx(s[:k].sum() / s.sum(), rel=1e-5)


def test_pca_inverse_is_best_rank_k_reconstruction():
    train = images(100, (2, 2, 3))
    full = PCA(12).fit(train)
    close(full.inverse_transform(full(train)), train, 1e-4)
    step = PCA(3, whiten=True).fit(train)
    mean, u, _ = numpy_pca(train)
    flat = train.reshape(100, -1) - mean
    expected = (flat @ u[:, :3] @ u[:, :3].T + mean).reshape(train.shape)
    close(step.inverse_transform(step(train)), expected, 1e-4)


def test_zca_whitens_and_matches_numpy():
    train = images(500, (2, 2, 2))
    mean, u, s = numpy_pca(train)
    eps = 1e-5
    w = u @ np.diag(1 / np.sqrt(s + eps)) @ u.T
    out = ZCA(eps).fit(train)(train)
    assert out.shape == train.shape
    expected = ((train.reshape(500, -1) - mean) @ w).reshape(train.shape)
    close(out, expected, 1e-4)
    flat = out.reshape(500, -1).astype(np.float64)
    close(np.cov(flat, rowvar=False, bias=True), np.eye(8), 1e-3)


@pytest.mark.parametrize("make", [SubtractMeanImage, SubtractChannelMean, StandardizeChannels,
                                  lambda: PCA(4, whiten=True), ZCA])
def test_state_dict_round_trip_and_tensor_kind(make):
    train, test = images(60, (2, 3, 2)), images(4, (2, 3, 2))
    fitted = make().fit(kiln.tensor(train))
    restored = make()
    restored.load_state_dict(fitted.state_dict())
    a, b = fitted(kiln.tensor(test)), restored(test)
    assert isinstance(a, kiln.Tensor) and isinstance(b, np.ndarray)
    np.testing.assert_array_equal(a.numpy(), b)
    state = fitted.state_dict()
    next(iter(state.values()))[...] = 0  # a copy: the step is unaffected
    np.testing.assert_array_equal(fitted(test), b)


def test_not_fitted_and_bad_state():
    with pytest.raises(RuntimeError, match="ZCA: not fitted"):
        ZCA()(images())
    with pytest.raises(RuntimeError, match="PCA: not fitted"):
        PCA(2).state_dict()
    step = StandardizeChannels().fit(images())
    state = step.state_dict()
    with pytest.raises(ValueError, match="StandardizeChannels: load_state_dict expects keys"):
        StandardizeChannels().load_state_dict({"mean": state["mean"]})
    with pytest.raises(ValueError, match="'std' has shape \\(2,\\), expected \\(3,\\)"):
        StandardizeChannels().load_state_dict({**state, "std": np.ones(2)})
    with pytest.raises(ValueError, match="PCA: load_state_dict: 'components' has shape"):
        PCA(3).load_state_dict(PCA(2).fit(images()).state_dict())
    with pytest.raises(ValueError, match="'shape' must be a 1-D array of positive ints"):
        SubtractMeanImage().load_state_dict({"mean": np.zeros(3), "shape": np.array([0])})


def test_bad_input():
    step = SubtractMeanImage().fit(images())
    with pytest.raises(ValueError, match=r"SubtractMeanImage: fitted on samples of shape "
                                         r"\(N, 3, 4, 5\), got a batch of shape \(2, 3, 4, 4\)"):
        step(images(2, (3, 4, 4)))
    with pytest.raises(ValueError, match=r"SubtractChannelMean: fitted on samples of shape "
                                         r"\(N, 3, \.\.\.\)"):
        SubtractChannelMean().fit(images())(images(2, (2, 4, 5)))
    with pytest.raises(TypeError, match="ZCA: expected images as a numpy.ndarray or kiln.Tensor"):
        ZCA().fit([[1.0, 2.0]])
    with pytest.raises(TypeError, match="PCA: expected numeric images"):
        PCA(1).fit(np.array([["a"]]))
    with pytest.raises(ValueError, match="StandardizeChannels: expected a batch of at least 2"):
        StandardizeChannels().fit(np.zeros(5))
    with pytest.raises(ValueError, match="SubtractMeanImage: cannot fit on an empty batch"):
        SubtractMeanImage().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="PCA: k=61 exceeds the 60 values per sample"):
        PCA(61).fit(images())
    with pytest.raises(ValueError, match="PCA: k must be positive"):
        PCA(0)
    with pytest.raises(ValueError, match="ZCA: eps must be a number > 0"):
        ZCA(eps=0)
    with pytest.raises(ValueError, match=r"PCA: inverse_transform expects \(N, 2\)"):
        PCA(2).fit(images()).inverse_transform(np.zeros((3, 3)))
