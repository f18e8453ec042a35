"""What a CNN learns, as pictures: the lecture's feature visualizations.

    filters_grid(model, "filters.png")                 # the first conv layer's filters
    activation_maps(model, "conv1", image, "act.png")  # one layer's feature maps
    maps = saliency(model, images, target=3)           # |d score_3 / d pixels|, (N, H, W)
    worst_misclassified(model, val_loader, "worst.png", k=16)

Every picture is a PNG grid written atomically by ``kiln.data.save_grid`` (torchvision's
``make_grid`` layout). Tiles are rescaled to [0, 1] one by one (each filter, map or
image from its own min to max), so a tile's pattern is visible whatever its scale;
small tiles are enlarged by repeating pixels (``zoom``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.autograd import enable_grad, no_grad
from kiln.data import DataLoader
from kiln.data.grid import save_grid
from kiln.nn import Module
from kiln.tensor import Tensor
from kiln.train import _images

__all__ = ["activation_maps", "filters_grid", "first_conv_weight", "get_layer", "saliency",
           "worst_misclassified"]

PathLike = str | os.PathLike[str]


def _zoom(tiles: np.ndarray, zoom: int | None, target: int = 48) -> np.ndarray:
    """(N, C, H, W) tiles enlarged by an integer factor: ``zoom``, or by default the one
    that brings the larger side near ``target`` pixels (never below 1)."""
    if zoom is None:
        zoom = max(1, target // max(tiles.shape[2:]))
    int_arg("visualize", "zoom", zoom, 1)
    return tiles.repeat(zoom, axis=2).repeat(zoom, axis=3)


@contextmanager
def _eval_mode(model: Module) -> Iterator[None]:
    """``model`` in eval mode inside the block; each submodule's own mode back after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _array(value: Any) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, Tensor) else np.asarray(value)


def first_conv_weight(model: Module) -> tuple[str, np.ndarray]:
    """The dotted name and weight (C_out, C_in, kH, kW) of the first Conv2d of ``model``
    in module order ('' when ``model`` is one); ValueError when it has none."""
    if not isinstance(model, Module):
        raise TypeError(f"visualize: expected a kiln.nn.Module or Conv2d, got "
                        f"{type(model).__name__}")
    found = _images.first_conv_weight(model)
    if found is None:
        raise ValueError(f"visualize: {type(model).__name__} has no Conv2d layer")
    return found


def filters_grid(model_or_conv: Module, path: PathLike, nrow: int | None = None,
                 zoom: int | None = None) -> Path:
    """Writes the first conv layer's filters as an image grid PNG; returns the path.

    The weight (C_out, C_in, kH, kW) gives one tile per output channel: an RGB tile
    when C_in is 3, a gray one when C_in is 1; for other C_in each (output, input)
    kernel is a gray tile, one row of C_in tiles per output channel. Each tile is scaled
    from its own min (black) to its max (white). ``nrow``: tiles per row (default 8, or
    C_in); ``zoom``: pixel repeat (default: tiles about 48 pixels wide).
    """
    weight = first_conv_weight(model_or_conv)[1]
    c_out, c_in, kh, kw = weight.shape
    if c_in in (1, 3):
        tiles, default_row = weight, 8
    else:
        tiles, default_row = weight.reshape(c_out * c_in, 1, kh, kw), c_in
    return save_grid(_zoom(tiles, zoom), path, nrow=nrow or default_row, normalize=True,
                     scale_each=True, pad_value=1.0)


def _one_image(input: Any, op: str) -> np.ndarray:  # noqa: A002
    x = _array(input)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] < 1:
        raise ValueError(f"{op}: expected an image (C, H, W) or a batch (N, C, H, W), got "
                         f"shape {x.shape}")
    return x


def get_layer(model: Module, layer: Module | str, op: str = "visualize") -> Module:
    """``layer`` itself (a module), or the submodule of ``model`` with that dotted name;
    ValueError listing the model's layers when there is none."""
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name]
            raise ValueError(f"{op}: {type(model).__name__} has no layer {layer!r}; its layers: "
                             f"{', '.join(names)}") from None
    if not isinstance(layer, Module):
        raise TypeError(f"{op}: layer must be a module of the model or its dotted name, got "
                        f"{type(layer).__name__}")
    return layer


def activation_maps(model: Module, layer: Module | str, input: Any,  # noqa: A002
                    path: PathLike, max_maps: int = 64, nrow: int = 8,
                    zoom: int | None = None) -> np.ndarray:
    """Runs ``model`` (eval mode, no autograd) on ``input`` and writes the output maps of
    ``layer`` (a submodule or its dotted name, e.g. 'layer1.0.conv1') for the first
    image as a PNG grid, one gray tile per channel (at most ``max_maps``), each scaled
    from its own min to max.

    input: one image (C, H, W) or a batch (N, C, H, W) (only its first image is shown),
    preprocessed as the model expects. Returns that image's maps, (C_layer, H', W').
    """
    op = "activation_maps"
    module = get_layer(model, layer, op)
    int_arg(op, "max_maps", max_maps, 1)
    x = _one_image(input, op)[:1]
    captured: list[Any] = []
    handle = module.register_forward_hook(lambda _m, _args, out: captured.append(out))
    try:
        with _eval_mode(model), no_grad():
            model(Tensor(np.ascontiguousarray(x)))
    finally:
        handle.remove()
    if not captured or not isinstance(captured[0], Tensor) or captured[0].ndim != 4:
        shape = tuple(captured[0].shape) if captured and isinstance(captured[0], Tensor) else None
        raise ValueError(f"{op}: layer {layer!r} must output feature maps (N, C, H, W) "
                         f"during the forward pass, got {shape}")
    maps = captured[0].numpy()[0]
    save_grid(_zoom(maps[:max_maps, None], zoom), path, nrow=nrow, normalize=True,
              scale_each=True, pad_value=1.0)
    return maps


def saliency(model: Module, input: Any, target: int | Sequence[int],  # noqa: A002
             path: PathLike | None = None, zoom: int | None = None) -> np.ndarray:
    """Saliency maps (Simonyan et al. 2014): |d score_target / d pixel|, the max over the
    color channels, for each image; the score is the model's output (logit) for class
    ``target`` (one class for all images, or one per image), in eval mode.

    input: (C, H, W) or (N, C, H, W), preprocessed as the model expects. Returns
    (N, H, W) float arrays. With ``path``, also writes a PNG with each image (left)
    beside its map (right), both scaled from their own min to max.
    """
    op = "saliency"
    x = _one_image(input, op).astype(np.float32, copy=False)
    n = x.shape[0]
    targets = np.broadcast_to(np.asarray(target), (n,)) if np.ndim(target) == 0 else \
        np.asarray(target)
    if targets.shape != (n,) or targets.dtype.kind not in "iu":
        raise ValueError(f"{op}: target must be one class index or {n} of them (one per "
                         f"image), got {target!r}")
    pixels = Tensor(np.array(x), requires_grad=True)
    with _eval_mode(model), enable_grad():
        scores = model(pixels)
        if scores.ndim != 2 or not (0 <= targets.min() and targets.max() < scores.shape[1]):
            raise ValueError(f"{op}: target {target!r} is not a class of the model's output "
                             f"of shape {tuple(scores.shape)}")
        picked = Tensor(np.eye(scores.shape[1], dtype=np.float32)[targets])
        (scores * picked).sum().backward()
    maps = np.abs(pixels.grad.numpy()).max(axis=1)
    if path is not None:
        pictures = x if x.shape[1] in (1, 3) else x.max(axis=1, keepdims=True)
        channels = pictures.shape[1]
        pairs = np.empty((2 * n, channels) + maps.shape[1:], np.float32)
        pairs[0::2] = pictures
        pairs[1::2] = maps[:, None]
        save_grid(_zoom(pairs, zoom), path, nrow=2 * min(n, 4), normalize=True,
                  scale_each=True, pad_value=1.0)
    return maps


def _batches(data: Any, op: str) -> Iterable[Any]:
    if isinstance(data, DataLoader) or (hasattr(data, "__iter__")
                                        and not hasattr(data, "__getitem__")):
        return data
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return DataLoader(data, batch_size=256)
    raise TypeError(f"{op}: expected a dataset or a loader of (images, labels) batches, got "
                    f"{type(data).__name__}")


def worst_misclassified(model: Module, data: Any, path: PathLike, k: int = 16,
                        class_names: Sequence[str] | None = None, nrow: int = 8,
                        zoom: int | None = None) -> list[dict[str, Any]]:
    """The ``k`` most confidently wrong images of ``data`` (a dataset or a loader of
    (images (N, C, H, W), labels (N,)) batches, in eval mode, no autograd): those whose
    predicted class has the highest softmax probability while differing from the label.
    Writes them as a PNG grid labelled 'T<true> P<predicted>' (or class names) and
    returns one dict per image, most confident first: ``index`` (position in the
    iteration), ``label``, ``predicted``, ``confidence``. Fewer than k if fewer are
    wrong; no file when none is.
    """
    op = "worst_misclassified"
    int_arg(op, "k", k, 1)
    kept: dict[str, np.ndarray] | None = None
    seen = 0
    with _eval_mode(model), no_grad():
        for batch in _batches(data, op):
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError(f"{op}: each batch must be (images, labels), got "
                                 f"{type(batch).__name__}")
            images, labels = _array(batch[0]), _array(batch[1]).astype(np.int64)
            logits = model(Tensor(np.ascontiguousarray(images))).numpy().astype(np.float64)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            predicted = probs.argmax(1)
            wrong = np.flatnonzero(predicted != labels)
            found = {"index": seen + wrong, "label": labels[wrong],
                     "predicted": predicted[wrong],
                     "confidence": probs[wrong, predicted[wrong]], "image": images[wrong]}
            seen += len(labels)
            if kept is not None:
                found = {key: np.concatenate([kept[key], found[key]]) for key in found}
            # Most confident first; ties by position, so the result is deterministic.
            order = np.lexsort((found["index"], -found["confidence"]))[:k]
            kept = {key: value[order] for key, value in found.items()}
    if kept is None or len(kept["index"]) == 0:
        return []

    def name(c: int) -> str:
        return str(class_names[c]) if class_names is not None else str(c)

    labels_text = [f"T{name(t)} P{name(p)}" for t, p in zip(kept["label"], kept["predicted"])]
    save_grid(_zoom(kept["image"], zoom), path, labels=labels_text, nrow=nrow, normalize=True,
              scale_each=True)
    return [{"index": int(i), "label": int(t), "predicted": int(p), "confidence": float(c)}
            for i, t, p, c in zip(kept["index"], kept["label"], kept["predicted"],
                                  kept["confidence"])]
