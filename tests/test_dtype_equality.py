"""Equal dtypes are equal: every C++-backed op accepts arrays whose dtype *equals*
float32 / float64 / uint8 / int64 / int8 without being NumPy's canonical dtype object
(unpickled arrays, ``astype(np.dtype('f4').newbyteorder('='))``, views), and gives
the same bits as with canonical arrays. Arrays in the other byte order are refused
by the kernels with an error naming the op, and converted by kiln.tensor and the
transforms. End to end: MNIST's big-endian IDX files, written byte by byte, read by
kiln.data.MNIST and scored by ``kiln eval`` through the CLI."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import cli, kernels, nn
from kiln.data import MNIST
from kiln.data import transforms as T
from kiln.nn.utils import clip_grad_norm_

# ----------------------------------------------------------------- the array variants


def _same_order(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder("="))


def _unpickled(a: np.ndarray) -> np.ndarray:
    return pickle.loads(pickle.dumps(a))


def _viewed(a: np.ndarray) -> np.ndarray:
    order = "|" if a.dtype.itemsize == 1 else "<" if np.little_endian else ">"
    return a.view(np.dtype(a.dtype.str).newbyteorder(order))


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "newbyteorder": _same_order, "unpickled": _unpickled, "view": _viewed,
}


def _canonical(dtype: np.dtype) -> np.dtype:
    return np.dtype(dtype.type)


def test_the_variants_are_equal_but_not_canonical() -> None:
    """What the other tests rely on: each variant's dtype == the canonical one, yet is
    another object (on the NumPy in use; if NumPy ever interned them all, the tests
    below would pass trivially, so this one says so)."""
    for dtype in (np.float32, np.float64, np.uint8, np.int64, np.int8):
        a = np.zeros(3, dtype)
        for name, variant in VARIANTS.items():
            v = variant(a)
            assert v.dtype == a.dtype and v.dtype.isnative, (name, dtype)
            if name != "view" or dtype != np.uint8:  # NumPy interns '|u1' views
                assert v.dtype is not _canonical(a.dtype), (name, dtype)


def _map_arrays(value: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_arrays(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_arrays(v, fn) for k, v in value.items()}
    return value


def _arrays_in(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays_in(v)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays_in(v)]
    return []


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [value]


# ------------------------------------------------------ one sample call per kernel

RNG = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def f64(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def i64(high: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, high, shape, dtype=np.int64)


def probs(*shape: int) -> np.ndarray:
    return RNG.random(shape, dtype=np.float32)


Call = tuple[tuple[Any, ...], dict[str, Any]]


def _sample_calls() -> dict[str, list[Call]]:
    x, w, b = f32(2, 3, 6, 6), f32(4, 3, 3, 3), f32(4)
    dy = f32(2, 4, 6, 6)
    xt, wt, dyt = f32(2, 4, 5, 5), f32(4, 3, 3, 3), f32(2, 3, 7, 7)
    _, idx = kernels.max_pool2d_forward(x, 2)
    bn_x = f32(4, 3, 5, 5)
    _, mean, invstd = kernels.batch_norm_forward(bn_x, None, None, training=True)
    logits, target = f32(5, 4), i64(4, 5)
    ce_loss, ce_logp, ce_total = kernels.cross_entropy_forward(logits, target)
    grad_scalar = np.ones((), np.float32)
    _, mask = kernels.dropout_forward(f32(3, 8), 0.5, 7, 0)
    act = f32(3, 5)
    soft = kernels.softmax_forward(act, 1)
    log_soft = kernels.log_softmax_forward(act, 1)
    img_u8, img_f32 = u8(3, 3, 6, 7), probs(3, 3, 6, 7)
    theta = np.tile(np.array([[1.0, 0.1, 0.2], [0.0, 0.9, -0.3]]), (3, 1, 1))
    boxes = np.array([[0, 0, 3, 4], [1, 2, 5, 5], [2, 1, 2, 6]], np.int64)
    jitter = np.tile(np.array([1.2, 0.8, 1.1, 0.05], np.float32), (3, 1))
    order = np.tile(np.array([0, 1, 2, 3], np.int8), (3, 1))

    def images(*rest: Any, **kw: Any) -> list[Call]:
        return [((img, *rest), kw) for img in (img_u8, img_f32)]

    def group(n: int = 2) -> list[np.ndarray]:
        return [f32(3, 4) for _ in range(n)]

    steps = [np.zeros(1, np.float32) for _ in range(2)]
    return {
        # convolution
        "conv2d_forward": [((x, w, b), {"padding": 1}), ((x.astype(np.float64),
                                                          w.astype(np.float64)), {})],
        "conv2d_backward_input": [((dy, w, (2, 3, 6, 6)), {"padding": 1})],
        "conv2d_backward_weight": [((dy, x, (4, 3, 3, 3)), {"padding": 1})],
        "conv2d_backward_bias": [((dy,), {})],
        "conv_transpose2d_forward": [((xt, wt, f32(3)), {})],
        "conv_transpose2d_backward_input": [((dyt, wt, (2, 4, 5, 5)), {})],
        "conv_transpose2d_backward_weight": [((dyt, xt, (4, 3, 3, 3)), {})],
        "conv_transpose2d_backward_bias": [((dyt,), {})],
        # pooling
        "max_pool2d_forward": [((x, 2), {}), ((x, 3), {"stride": 2, "return_indices": False})],
        "max_pool2d_backward": [((f32(2, 3, 3, 3), idx, (2, 3, 6, 6)), {})],
        "avg_pool2d_forward": [((x, 2), {})],
        "avg_pool2d_backward": [((f32(2, 3, 3, 3), (2, 3, 6, 6), 2), {})],
        "adaptive_avg_pool2d_forward": [((x, (2, 4)), {})],
        "adaptive_avg_pool2d_backward": [((f32(2, 3, 2, 4), (2, 3, 6, 6)), {})],
        "adaptive_max_pool2d_forward": [((x, (2, 4)), {})],
        "fractional_max_pool2d_forward": [((x, 2, (3, 4), probs(2, 3, 2)), {})],
        # resampling, sliding blocks
        "interpolate_forward": [((x, 9, 4), {"mode": "bilinear"}), ((x, 12, 12), {})],
        "interpolate_backward": [((f32(2, 3, 9, 4), (2, 3, 6, 6)), {"mode": "bilinear"})],
        "unfold_forward": [((x, 3), {"padding": 1})],
        "fold_forward": [((f32(2, 27, 36), (6, 6), 3), {"padding": 1})],
        # normalization (training updates the running statistics in place)
        "batch_norm_forward": [((bn_x, f32(3), probs(3) + 1, f32(3), f32(3)),
                                {"training": True}),
                               ((bn_x, f32(3), probs(3) + 1), {})],
        "batch_norm_backward": [((f32(4, 3, 5, 5), bn_x, f32(3), mean, invstd),
                                 {"training": True})],
        "batch_norm_relu_forward": [((bn_x, f32(4, 3, 5, 5), f32(3), probs(3) + 1, f32(3),
                                      f32(3)), {"training": True}),
                                    ((bn_x, None, f32(3), probs(3) + 1), {})],
        "batch_norm_relu_backward": [((f32(4, 3, 5, 5), f32(4, 3, 5, 5), bn_x, f32(3), mean,
                                       invstd), {"training": True, "residual_grad": True})],
        "group_norm_forward": [((f32(4, 6, 5), 3, f32(6), f32(6)), {})],
        "group_norm_backward": [((f32(4, 6, 5), f32(4, 6, 5), f32(6), f32(4, 3),
                                  probs(4, 3) + 1, 3), {})],
        "layer_norm_forward": [((f32(4, 6, 5), (6, 5), f32(6, 5), f32(6, 5)), {})],
        "layer_norm_backward": [((f32(4, 6), f32(4, 6), (6,), f32(6), f32(4), probs(4) + 1), {})],
        "local_response_norm_forward": [((f32(2, 5, 3, 3), 3), {"alpha": 0.5})],
        "local_response_norm_backward": [((f32(2, 5, 3), f32(2, 5, 3), 2), {"alpha": 0.5})],
        # linear algebra
        "linear_forward": [((f32(5, 4), f32(3, 4), f32(3)), {})],
        "linear_backward": [((f32(5, 3), f32(5, 4), f32(3, 4)), {})],
        "matmul_forward": [((f32(2, 3, 4), f32(4, 5)), {}), ((f64(3, 4), f64(4, 2)), {})],
        "matmul_backward": [((f32(2, 3, 5), f32(2, 3, 4), f32(4, 5)), {})],
        # activations: every op of the C++ pointwise list, and the list itself
        **{f"{n}_forward": [((act,), {})] for n in kernels.pointwise_ops()},
        **{f"{n}_backward": [((f32(3, 5), act), {})] for n in kernels.pointwise_ops()},
        "pointwise_ops": [((), {})],
        "softmax_forward": [((act, 1), {})],
        "softmax_backward": [((f32(3, 5), soft, 1), {})],
        "log_softmax_forward": [((act, 0), {})],
        "log_softmax_backward": [((f32(3, 5), log_soft, 1), {})],
        "prelu_forward": [((f32(2, 3, 4), probs(3)), {})],
        "prelu_backward": [((f32(2, 3, 4), f32(2, 3, 4), probs(3)), {})],
        # losses
        "cross_entropy_forward": [((logits, target), {"weight": probs(4)}),
                                  ((logits, probs(5, 4)), {})],
        "cross_entropy_backward": [((grad_scalar, ce_logp, target, ce_total), {})],
        "nll_loss_forward": [((ce_logp, target), {"weight": probs(4)})],
        "nll_loss_backward": [((grad_scalar, ce_logp, target, ce_total), {})],
        "mse_loss_forward": [((f32(4, 3), f32(4, 3)), {"weight": probs(4, 3)})],
        "mse_loss_backward": [((grad_scalar, f32(4, 3), f32(4, 3)), {"target_grad": True})],
        "l1_loss_forward": [((f32(4, 3), f32(4, 3)), {"reduction": "sum"})],
        "l1_loss_backward": [((grad_scalar, f32(4, 3), f32(4, 3)), {})],
        "binary_cross_entropy_with_logits_forward": [((f32(4, 3), probs(4, 3), probs(4, 3),
                                                       probs(4, 3)), {})],
        "binary_cross_entropy_with_logits_backward": [((grad_scalar, f32(4, 3), probs(4, 3)),
                                                        {"target_grad": True})],
        "smooth_l1_loss_forward": [((f32(4, 3), f32(4, 3)), {"beta": 0.5})],
        "smooth_l1_loss_backward": [((grad_scalar, f32(4, 3), f32(4, 3)), {"beta": 0.5})],
        "huber_loss_forward": [((f32(4, 3), f32(4, 3)), {"weight": probs(4, 3)})],
        "huber_loss_backward": [((grad_scalar, f32(4, 3), f32(4, 3)), {"delta": 0.5})],
        "binary_cross_entropy_forward": [((probs(4, 3), probs(4, 3), probs(3)), {})],
        "binary_cross_entropy_backward": [((grad_scalar, probs(4, 3), probs(4, 3)),
                                           {"target_grad": True})],
        "multi_margin_loss_forward": [((logits, target), {"weight": probs(4)})],
        "multi_margin_loss_backward": [((grad_scalar, logits, target), {"p": 2})],
        # dropout (same seed and offset: the same mask)
        "dropout_forward": [((f32(3, 8), 0.5, 7, 0), {})],
        "dropout2d_forward": [((x, 0.5, 7, 0), {})],
        "dropout_backward": [((f32(3, 8), mask, 0.5), {})],
        # augmentation, on uint8 and float32 images
        "augment_uniform": [((4, 3, 11, 0), {})],
        "augment_flip": images(np.array([1, 0, 1], np.uint8), np.array([0, 1, 1], np.uint8)),
        "augment_crop": images((5, 5), i64(3, 3), i64(3, 3), "constant",
                               np.ones(3, np.float32)),
        "augment_resized_crop": images(boxes, (4, 4)),
        "augment_affine": images(theta, np.zeros(3, np.float32)),
        "augment_color_jitter": images(jitter, order),
        "augment_channel_affine": images(probs(3), f32(3)),
        "augment_box_fill": images(boxes, "value", np.full(3, 0.5, np.float32)),
        "augment_blend_pairs": images(np.array([2, 0, 1], np.int64),
                                      probs(3)),
        # optimizers and gradient clipping, in place on lists of arrays
        "sgd_step": [((group(), group(), group(), 0.1, 0.9, 0.0, 0.01, True, False), {})],
        "adam_step": [((group(), group(), group(), [p * p for p in group()], group(),
                        [s.copy() for s in steps], 1e-3, 0.9, 0.999, 1e-8, 0.01, True, False,
                        True), {})],
        "rmsprop_step": [((group(), group(), [p * p for p in group()], group(), group(),
                           [s.copy() for s in steps], 1e-2, 0.99, 1e-8, 0.0, 0.9, True,
                           False), {})],
        "adagrad_step": [((group(), group(), [p * p for p in group()],
                           [s.copy() for s in steps], 1e-2, 0.0, 0.0, 1e-10, False), {})],
        "adadelta_step": [((group(), group(), [p * p for p in group()], [p * p for p in group()],
                            [s.copy() for s in steps], 1.0, 0.9, 1e-6, 0.01, False), {})],
        "adamax_step": [((group(), group(), group(), [p * p + 0.1 for p in group()],
                          [s.copy() for s in steps], 2e-3, 0.9, 0.999, 1e-8, 0.0, False), {})],
        "nadam_step": [((group(), group(), group(), [p * p for p in group()],
                         [np.ones(1, np.float32) for _ in range(2)], [s.copy() for s in steps],
                         2e-3, 0.9, 0.999, 1e-8, 0.01, 4e-3, False, True), {})],
        "radam_step": [((group(), group(), group(), [p * p for p in group()],
                         [s.copy() for s in steps], 1e-3, 0.9, 0.999, 1e-8, 0.01, False, False),
                        {})],
        "grad_norms": [(([f32(3, 4), f32(7)], 2.0), {}), (([f64(5)], float("inf")), {})],
        "scale_": [(([f32(3, 4), f32(7)], 0.5), {})],
        "clamp_": [(([f32(3, 4), f32(7)], -0.2, 0.3), {})],
    }


SAMPLES = _sample_calls()
CASES = [(name, i) for name, calls in SAMPLES.items() for i in range(len(calls))]


def test_every_kernel_has_a_sample() -> None:
    assert set(SAMPLES) == set(kernels.__all__)


def _run(name: str, call: Call, fn: Callable[[np.ndarray], np.ndarray]) -> list[Any]:
    """Calls the kernel on a fresh copy of the sample (fn applied to every array); the
    result and every argument array afterwards (the in-place kernels change them)."""
    args, kwargs = _map_arrays(call, lambda a: fn(a.copy()))
    out = getattr(kernels, name)(*args, **kwargs)
    return _flatten(out) + _arrays_in((args, kwargs))


def _assert_same(expected: list[Any], got: list[Any], where: str) -> None:
    assert len(expected) == len(got), where
    for e, g in zip(expected, got):
        if isinstance(e, np.ndarray):
            assert isinstance(g, np.ndarray) and g.dtype == e.dtype, where
            np.testing.assert_array_equal(g, e, err_msg=where)
        else:
            assert g == e or (g != g and e != e), where  # None, floats (NaN-safe)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name,index", CASES)
def test_kernel_accepts_equal_dtypes(name: str, index: int, variant: str) -> None:
    call = SAMPLES[name][index]
    expected = _run(name, call, lambda a: a)
    got = _run(name, call, VARIANTS[variant])
    _assert_same(expected, got, f"{name}[{index}] with {variant} arrays")


def _big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">")) if a.dtype.itemsize > 1 else a


# Calls on single-byte arrays alone (uint8 images) have no byte order to get wrong.
_MULTI_BYTE_CASES = [(name, index) for name, index in CASES
                     if any(a.dtype.itemsize > 1 for a in _arrays_in(SAMPLES[name][index]))]


@pytest.mark.skipif(not np.little_endian, reason="big-endian is the native order here")
@pytest.mark.parametrize("name,index", _MULTI_BYTE_CASES)
def test_kernel_refuses_the_other_byte_order(name: str, index: int) -> None:
    call = SAMPLES[name][index]
    with pytest.raises(TypeError, match=r"expected .* in native byte order, got big-endian >"
                       ) as info:
        _run(name, call, _big_endian)
    op = str(info.value).split(":")[0]  # the op's own name: conv2d for conv2d_forward
    assert name.startswith(op) or op == name.replace("adam", "adamw"), str(info.value)


# --------------------------------------------- the Python layers over the kernels


class _Net(nn.Module):
    """conv, batch norm, max pool, dropout, adaptive avg pool, linear, PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.act = nn.PReLU()

    def forward(self, x: kiln.Tensor) -> kiln.Tensor:
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        x = F.adaptive_avg_pool2d(self.drop(x), (2, 2))
        return self.act(self.fc(x.reshape(x.shape[0], -1)))


def _train_steps(fn: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Two steps of SGD (momentum) and Adam with clipping on a seeded net whose
    parameters, inputs and targets all went through fn; the weights afterwards."""
    kiln.manual_seed(3)
    net = _Net()
    for name, p in list(net.named_parameters()):
        owner, attr = name.rsplit(".", 1)
        array = fn(p.detach().numpy().copy())
        setattr(net.get_submodule(owner), attr, nn.Parameter(kiln.tensor(array)))
    rng = np.random.default_rng(1)
    x = kiln.tensor(fn(rng.standard_normal((6, 1, 8, 8)).astype(np.float32)))
    y = kiln.tensor(fn(rng.integers(0, 3, 6)))
    params = list(net.parameters())
    optimizers = [kiln.optim.SGD(params[:3], lr=0.1, momentum=0.9),
                  kiln.optim.Adam(params[3:], lr=0.01)]
    for _ in range(2):
        for opt in optimizers:
            opt.zero_grad()
        loss = F.cross_entropy(net(x), y) + F.mse_loss(net(x), kiln.zeros(6, 3))
        loss.backward()
        clip_grad_norm_(params, 0.5)
        for opt in optimizers:
            opt.step()
    return [p.detach().numpy().copy() for p in params] + [
        b.numpy().copy() for b in net.buffers()]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_training_steps_accept_equal_dtypes(variant: str) -> None:
    expected = _train_steps(lambda a: a)
    got = _train_steps(VARIANTS[variant])
    _assert_same(expected, got, f"training with {variant} arrays")


def test_training_steps_convert_big_endian_tensors() -> None:
    expected = _train_steps(lambda a: a)
    got = _train_steps(_big_endian)
    _assert_same(expected, got, "training on big-endian tensors")


def test_tensor_converts_and_from_numpy_refuses_the_other_byte_order() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    big = a.astype(">f4")
    t = kiln.tensor(big)
    assert t.dtype.isnative and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(F.relu(kiln.tensor(big) - 2).numpy(), np.maximum(a - 2, 0))
    with pytest.raises(ValueError, match="from_numpy: .*byte order"):
        kiln.from_numpy(big)
    shared = _unpickled(a)
    assert np.shares_memory(kiln.from_numpy(shared).numpy(), shared)


TRANSFORMS = [
    T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
               T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.Normalize([0.5] * 3, [0.25] * 3)]),
    T.Compose([T.RandomResizedCrop(5), T.RandomAffine(15, translate=(0.1, 0.1)),
               T.ToFloat(), T.Cutout(2), T.RandomErasing(p=1.0)]),
    T.Compose([T.Resize(4), T.CenterCrop(3), T.ToFloat(),
               T.PCALighting(0.1, [0.2, 0.1, 0.05], np.eye(3))]),
]


@pytest.mark.parametrize("index", range(len(TRANSFORMS)))
@pytest.mark.parametrize("images", [u8(4, 3, 8, 9), probs(4, 3, 8, 9)], ids=["uint8", "float32"])
def test_transforms_accept_equal_dtypes_and_convert_big_endian(index: int,
                                                               images: np.ndarray) -> None:
    transform = TRANSFORMS[index]
    expected = transform(images.copy(), seed=11)
    for name, fn in [*VARIANTS.items(), ("big-endian", _big_endian)]:
        got = transform(fn(images.copy()), seed=11)
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


# ------------------------------------------------------ MNIST's IDX files, end to end


def _idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    """An IDX file as MNIST's are: big-endian magic and sizes, then the bytes."""
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 'digits' a small net learns in one epoch: class k lights a 7x7
    block at one of ten places, over noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 5)
        images[i, 3 + 14 * r:10 + 14 * r, 1 + 5 * c:8 + 5 * c] = 255
    return images, labels


def _write_mnist(folder: Path, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    for prefix, n, seed, gz in (("train", n_train, 0, False), ("t10k", n_test, 1, True)):
        images, labels = _digits(n, seed)
        pixels = bytes(int(v) for v in images.reshape(-1))  # byte by byte, row-major
        _idx(folder / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}", 0x00000803,
             (n, 28, 28), pixels)
        _idx(folder / f"{prefix}-labels-idx1-ubyte", 0x00000801, (n,),
             bytes(int(v) for v in labels))
    return images, labels


def test_mnist_reads_idx_files(tmp_path: Path) -> None:
    images, labels = _write_mnist(tmp_path, 20, 12)
    test = MNIST(tmp_path, train=False)
    x, y = (t.numpy() for t in test.tensors[:2])
    assert x.dtype == np.uint8 and y.dtype.kind in "iu"
    np.testing.assert_array_equal(x.reshape(12, 28, 28), images)
    np.testing.assert_array_equal(y, labels)
    # what the IDX reader hands on (a native copy of a '>'-typed buffer) goes into
    # the kernels as it is
    out = kernels.augment_channel_affine(x.reshape(12, 1, 28, 28),
                                         np.full(1, 1 / 255, np.float32), np.zeros(1, np.float32))
    np.testing.assert_array_equal(out, images[:, None].astype(np.float32) * np.float32(1 / 255))


def test_kiln_eval_scores_mnist_idx_files(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mnist"
    data.mkdir()
    _write_mnist(data, 600, 200)
    runs = tmp_path / "runs"
    spec = f"mnist:{data}"
    assert cli.main(["train", "--data", spec, "--epochs", "1", "--batch-size", "64",
                     "--quiet", "--out", str(runs), "--name", "m"]) == 0
    capsys.readouterr()
    code = cli.main(["eval", str(runs / "m" / "best.safetensors"), "--data", spec])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "200 images" in out
    line = next(x for x in out.splitlines() if x.startswith("loss"))
    accuracy = float(line.split("accuracy")[1].split()[0])
    assert accuracy > 0.9, out
