"""Preprocessing fitted on the training set and applied unchanged at test time.

Each step learns its statistics with ``fit(train_images)``, transforms any batch
with ``step(images)`` (float32 out, same kind in and out: NumPy array or kiln
Tensor), and saves/restores them with ``state_dict()`` / ``load_state_dict()``.
For a batch X of N samples, each flattened to D values x_n, with mean mu:

    SubtractMeanImage      x - mu                        (mu: one value per pixel)
    SubtractChannelMean    x - mu_c                      (mu_c: over N, H, W of channel c)
    StandardizeChannels    (x - mu_c) / sigma_c          (sigma_c: population std, ddof=0)
    PCA(k)                 U_k^T (x - mu)   -> (N, k)    Cov = X_c^T X_c / N = U diag(S) U^T
      whiten=True          divided by sqrt(S_k + eps)
    ZCA(eps)               U diag(1/sqrt(S + eps)) U^T (x - mu), reshaped as x

Statistics are accumulated in float64 over chunks of samples, so fitting 50,000
CIFAR images never holds a float64 copy of the whole set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.data.dataset import numeric_array
from kiln.tensor import Tensor

__all__ = ["PCA", "StandardizeChannels", "SubtractChannelMean", "SubtractMeanImage", "ZCA"]

_CHUNK = 1024


def _array(op: str, images: Any, min_ndim: int) -> np.ndarray:
    images = numeric_array(op, images)
    if images.ndim < min_ndim:
        raise ValueError(f"{op}: expected a batch of at least {min_ndim} dims (N, ...), got "
                         f"shape {images.shape}")
    return images


def _eps(op: str, eps: Any) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{op}: eps must be a number > 0, got {eps!r}")
    return float(eps)


def _chunks(x: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, x.shape[0], _CHUNK):
        yield x[start:start + _CHUNK].astype(np.float64)


class _Fitted:
    """Shared fit/apply/state plumbing; subclasses define _fit and _apply."""

    op = ""
    min_ndim = 2
    state_keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._state: dict[str, np.ndarray] | None = None

    def fit(self, images: Any) -> _Fitted:
        """Learns the statistics from training images (N, ...); returns self."""
        x = _array(self.op, images, self.min_ndim)
        if x.shape[0] < 1:
            raise ValueError(f"{self.op}: cannot fit on an empty batch of shape {x.shape}")
        self._state = {k: v.astype(np.float32) for k, v in self._fit(x).items()}
        self._state["shape"] = np.array(self._shape_key(x.shape), np.int64)
        return self

    def __call__(self, images: Any) -> Any:
        """Applies the fitted statistics: float32, same kind (array/Tensor) as given."""
        state = self._require_state()
        x = _array(self.op, images, self.min_ndim)
        if self._shape_key(x.shape) != tuple(state["shape"].tolist()):
            raise ValueError(f"{self.op}: fitted on samples of shape "
                             f"{self._describe(state['shape'])}, got a batch of shape {x.shape}")
        out = self._apply(x.astype(np.float32, copy=False), state).astype(np.float32, copy=False)
        return Tensor(out) if isinstance(images, Tensor) else out

    transform = __call__

    def fit_transform(self, images: Any) -> Any:
        return self.fit(images)(images)

    def _shape_key(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[1:])  # the per-sample shape; per-channel steps override

    def _describe(self, key: np.ndarray) -> str:
        return f"(N, {', '.join(str(int(v)) for v in key)})"

    def _require_state(self) -> dict[str, np.ndarray]:
        if self._state is None:
            raise RuntimeError(f"{self.op}: not fitted; call fit(train_images) or "
                               f"load_state_dict first")
        return self._state

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted statistics as NumPy arrays (copies)."""
        return {k: v.copy() for k, v in self._require_state().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {*self.state_keys, "shape"}
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{self.op}: load_state_dict expects keys {sorted(expected)}, "
                             f"got {got}")
        arrays = {k: np.asarray(v.detach() if isinstance(v, Tensor) else v) for k, v in
                  state.items()}
        self._check_state(arrays)
        self._state = {k: v.astype(np.int64 if k == "shape" else np.float32)
                       for k, v in arrays.items()}

    def _check_state(self, state: dict[str, np.ndarray]) -> None:
        shape = state["shape"]
        if shape.ndim != 1 or shape.size < 1 or shape.dtype.kind not in "iu" or shape.min() < 1:
            raise ValueError(f"{self.op}: load_state_dict: 'shape' must be a 1-D array of "
                             f"positive ints, got {shape!r}")
        key = tuple(shape.tolist())
        for name in self.state_keys:
            if state[name].shape != self._state_shape(name, key):
                raise ValueError(f"{self.op}: load_state_dict: '{name}' has shape "
                                 f"{state[name].shape}, expected "
                                 f"{self._state_shape(name, key)}")

    def _state_shape(self, name: str, key: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


def _mean_image(x: np.ndarray) -> np.ndarray:
    return sum(chunk.sum(0) for chunk in _chunks(x)) / x.shape[0]


class SubtractMeanImage(_Fitted):
    """x - mean image of the training set (one mean per pixel and channel)."""

    op = "SubtractMeanImage"
    state_keys = ("mean",)

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"mean": _mean_image(x)}

    def _state_shape(self, name: str, key: tuple[int, ...]) -> tuple[int, ...]:
        return key

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        return x - state["mean"]


class SubtractChannelMean(_Fitted):
    """x - per-channel mean over all training samples and positions (channel axis 1)."""

    op = "SubtractChannelMean"
    state_keys = ("mean",)

    def _shape_key(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[1],)

    def _describe(self, key: np.ndarray) -> str:
        return f"(N, {int(key[0])}, ...)"

    def _state_shape(self, name: str, key: tuple[int, ...]) -> tuple[int, ...]:
        return key

    def _channel_stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        axes = (0, *range(2, x.ndim))
        count = x.size // x.shape[1]
        mean = sum(chunk.sum(axes) for chunk in _chunks(x)) / count
        shape = (1, -1) + (1,) * (x.ndim - 2)
        squares = sum(((chunk - mean.reshape(shape)) ** 2).sum(axes) for chunk in _chunks(x))
        return mean, np.sqrt(squares / count)

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"mean": self._channel_stats(x)[0]}

    def _broadcast(self, value: np.ndarray, ndim: int) -> np.ndarray:
        return value.reshape((1, -1) + (1,) * (ndim - 2))

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        return x - self._broadcast(state["mean"], x.ndim)


class StandardizeChannels(SubtractChannelMean):
    """(x - mean_c) / std_c per channel (axis 1), both from the training set.

    Args:
        eps: floor for std_c, so a constant channel maps to 0 instead of dividing by 0.
    """

    op = "StandardizeChannels"
    state_keys = ("mean", "std")

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = _eps(self.op, eps)

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        mean, std = self._channel_stats(x)
        return {"mean": mean, "std": np.maximum(std, self.eps)}

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        return (x - self._broadcast(state["mean"], x.ndim)) / self._broadcast(state["std"],
                                                                                 x.ndim)


def _covariance_eigen(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (D,), eigenvalues (D,) descending and eigenvectors (D, D) of the covariance."""
    flat = x.reshape(x.shape[0], -1)
    mean = _mean_image(flat)
    covariance = np.zeros((flat.shape[1],) * 2)
    for chunk in _chunks(flat):
        centred = chunk - mean
        covariance += centred.T @ centred
    covariance /= flat.shape[0]
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    return mean, np.maximum(values[order], 0.0), vectors[:, order]


class PCA(_Fitted):
    """Projects each flattened sample on the top-k principal components: (N, ...) -> (N, k).

    Args:
        k: components kept (1 <= k <= D, D = values per sample).
        whiten: divide each component by sqrt(variance + eps) (unit variance).
        eps: added to the variances before whitening.

    ``inverse_transform(z)`` maps (N, k) back to the sample shape (the best rank-k
    reconstruction). ``explained_variance_ratio`` is the variance share kept.
    """

    op = "PCA"
    state_keys = ("mean", "components", "variances", "total_variance")

    def __init__(self, k: int, whiten: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        int_arg("PCA", "k", k, 1)
        self.k, self.whiten, self.eps = int(k), bool(whiten), _eps("PCA", eps)

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        d = int(np.prod(x.shape[1:]))
        if self.k > d:
            raise ValueError(f"PCA: k={self.k} exceeds the {d} values per sample of a batch "
                             f"of shape {x.shape}")
        mean, values, vectors = _covariance_eigen(x)
        return {"mean": mean, "components": vectors[:, :self.k], "variances": values[:self.k],
                "total_variance": np.array([values.sum()])}

    def _state_shape(self, name: str, key: tuple[int, ...]) -> tuple[int, ...]:
        d = int(np.prod(key))
        return {"mean": (d,), "components": (d, self.k), "variances": (self.k,),
                "total_variance": (1,)}[name]

    def _scale(self, state: dict[str, np.ndarray]) -> np.ndarray:
        return (np.sqrt(state["variances"] + np.float32(self.eps)) if self.whiten
                else np.ones_like(state["variances"]))

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1) - state["mean"]
        return (flat @ state["components"]) / self._scale(state)

    def inverse_transform(self, z: Any) -> Any:
        """(N, k) component scores back to samples (N, ...) of the fitted shape."""
        state = self._require_state()
        scores = _array(self.op, z, 2)
        if scores.ndim != 2 or scores.shape[1] != self.k:
            raise ValueError(f"PCA: inverse_transform expects (N, {self.k}), got {scores.shape}")
        flat = (scores.astype(np.float32) * self._scale(state)) @ state["components"].T
        out = (flat + state["mean"]).reshape((-1, *state["shape"].tolist()))
        return Tensor(out) if isinstance(z, Tensor) else out

    @property
    def explained_variance_ratio(self) -> float:
        state = self._require_state()
        return float(state["variances"].sum() / max(float(state["total_variance"][0]), 1e-30))


class ZCA(_Fitted):
    """ZCA whitening: decorrelates the values of each sample and gives them unit variance
    while staying as close as possible to the input (the output keeps its shape).

    Args:
        eps: added to each eigenvalue before the inverse square root; larger values
            whiten low-variance directions (noise) less.
    """

    op = "ZCA"
    state_keys = ("mean", "matrix")

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = _eps("ZCA", eps)

    def _fit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        mean, values, vectors = _covariance_eigen(x)
        matrix = (vectors / np.sqrt(values + self.eps)) @ vectors.T
        return {"mean": mean, "matrix": matrix}

    def _state_shape(self, name: str, key: tuple[int, ...]) -> tuple[int, ...]:
        d = int(np.prod(key))
        return (d,) if name == "mean" else (d, d)

    def _apply(self, x: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        flat = x.reshape(x.shape[0], -1) - state["mean"]
        return (flat @ state["matrix"]).reshape(x.shape)  # the matrix is symmetric
