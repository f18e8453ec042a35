"""Transfer learning: freeze a pretrained backbone, replace the head, give each stage its
own learning rate, extract embeddings for a linear classifier.

    model = kiln.models.efficientnet_lite0(weights="imagenet")
    replace_head(model, num_classes=5)
    freeze(model)                           # everything but the new head; BN kept in eval
    opt = kiln.optim.Adam(discriminative_groups(model, lr=1e-3, factor=0.3))
    ...
    unfreeze(model)                         # fine-tune everything, e.g. at a lower lr

The lectures' table: a small dataset similar to ImageNet -> freeze the backbone and
train the head (or a linear classifier on ``extract_features``); more data -> unfreeze
later stages (``freeze(model, until="layer4")``) with lower learning rates for the
earlier ones.

Frozen BatchNorm layers stay in eval mode (their running statistics are neither used
from the batch nor updated) even when ``model.train()`` is called: with few images
per batch, batch statistics would otherwise drift from the ones the weights were
trained with. ``unfreeze`` restores the usual behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from kiln import nn
from kiln.autograd import no_grad
from kiln.tensor import Tensor, tensor

__all__ = ["discriminative_groups", "extract_features", "freeze", "head_backbone_groups",
           "replace_head", "unfreeze"]


def _head_name(model: nn.Module, op: str) -> str:
    name = getattr(model, "head_name", None)
    if name is not None:
        return name
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{op}: {type(model).__name__} has no head_name and no Linear layer")
    return linears[-1]


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _frozen_train(self: nn.Module, mode: bool = True) -> nn.Module:
    """train() of a frozen BatchNorm: stays in eval mode."""
    if not isinstance(mode, bool):
        raise ValueError(f"train: training mode is expected to be boolean, got {mode!r}")
    self.training = False
    return self


def _set_bn_frozen(module: nn.Module, frozen: bool, training: bool) -> None:
    if frozen:
        object.__setattr__(module, "train", _frozen_train.__get__(module))
        module.training = False
    else:
        module.__dict__.pop("train", None)
        module.training = training


def freeze(model: nn.Module, until: str | None = None) -> list[str]:
    """Stops gradients of the model's early parameters; returns the frozen names.

    ``until=None`` freezes everything except the head (``model.head_name``, or the last
    Linear layer). ``until="layer4"`` (any module name) freezes every parameter that comes
    before that module in registration order: it and everything after it stay
    trainable. BatchNorm layers whose parameters are all frozen are kept in eval mode.
    """
    modules = dict(model.named_modules())
    boundary = _head_name(model, "freeze") if until is None else until
    if not isinstance(boundary, str) or boundary not in modules or boundary == "":
        known = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"freeze: until={until!r} names no module of "
                         f"{type(model).__name__} (top-level modules: {known})")
    names = [n for n, _ in model.named_parameters()]
    first = next((i for i, n in enumerate(names) if _under(n, boundary)), None)
    if first is None:
        raise ValueError(f"freeze: module {boundary!r} has no parameters to start from")
    frozen = names[:first]
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    for name, module in modules.items():
        if isinstance(module, nn.BatchNorm2d):
            own = [f"{name}.{p}" if name else p for p, _ in module.named_parameters()]
            if own and all(not params[p].requires_grad for p in own):
                _set_bn_frozen(module, True, False)
    return frozen


def unfreeze(model: nn.Module, modules: Iterable[str] | None = None) -> list[str]:
    """Lets gradients flow again into every parameter (or those under the given module
    names) and returns BatchNorm layers there to the model's mode; returns the names."""
    prefixes = [""] if modules is None else list(modules)
    all_modules = dict(model.named_modules())
    for prefix in prefixes:
        if prefix not in all_modules:
            raise ValueError(f"unfreeze: {prefix!r} names no module of "
                             f"{type(model).__name__}")
    names = []
    for name, param in model.named_parameters():
        if any(_under(name, p) for p in prefixes):
            param.requires_grad_(True)
            names.append(name)
    for name, module in all_modules.items():
        if isinstance(module, nn.BatchNorm2d) and any(_under(name, p) for p in prefixes):
            _set_bn_frozen(module, False, model.training)
    return names


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Puts a new Linear(in_features, num_classes) (PyTorch's default init) where the
    head was; returns it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"replace_head: num_classes must be a positive int, got "
                         f"{num_classes!r}")
    name = _head_name(model, "replace_head")
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"replace_head: {name} is a {type(old).__name__}, not a Linear")
    head = nn.Linear(old.in_features, num_classes)
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, head)
    return head


def _stages(model: nn.Module, op: str) -> list[tuple[str, ...]]:
    stages = getattr(model, "stages", None)
    if stages:
        return [tuple(s) for s in stages]
    children = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    if not children:
        raise ValueError(f"{op}: {type(model).__name__} has no parameters")
    return [(n,) for n in children]


def discriminative_groups(model: nn.Module, lr: float, factor: float = 0.5
                          ) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per stage (``model.stages``, else the top-level
    modules), the head last: stage i of n gets ``lr * factor ** (n - 1 - i)``, so the
    head trains at ``lr`` and each earlier stage ``factor`` times slower. Frozen
    parameters are left out; stages with none trainable are dropped. Each group carries
    its ``name`` (the stage's modules, joined by '+')."""
    if not lr > 0:
        raise ValueError(f"discriminative_groups: lr must be positive, got {lr}")
    if not 0 < factor <= 1:
        raise ValueError(f"discriminative_groups: factor must be in (0, 1], got {factor}")
    stages = _stages(model, "discriminative_groups")
    named = list(model.named_parameters())
    groups: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i, stage in enumerate(stages):
        params = [(n, p) for n, p in named
                  if n not in taken and any(_under(n, s) for s in stage)]
        taken.update(n for n, _ in params)
        trainable = [p for _, p in params if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": lr * factor ** (len(stages) - 1 - i),
                           "name": "+".join(stage)})
    rest = [p for n, p in named if n not in taken and p.requires_grad]
    if rest:
        raise ValueError(f"discriminative_groups: {len(rest)} trainable parameters belong "
                         "to no stage of the model")
    if not groups:
        raise ValueError("discriminative_groups: every parameter is frozen")
    return groups


def head_backbone_groups(model: nn.Module, head_lr: float, backbone_lr: float
                         ) -> list[dict[str, Any]]:
    """Two parameter groups: the head at ``head_lr``, every other trainable parameter at
    ``backbone_lr`` (frozen ones left out; an empty group is dropped)."""
    for label, value in (("head_lr", head_lr), ("backbone_lr", backbone_lr)):
        if not value > 0:
            raise ValueError(f"head_backbone_groups: {label} must be positive, got {value}")
    head = _head_name(model, "head_backbone_groups")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not _under(n, head)], "lr": backbone_lr,
         "name": "backbone"},
        {"params": [p for n, p in named if _under(n, head)], "lr": head_lr, "name": "head"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("head_backbone_groups: every parameter is frozen")
    return groups


def extract_features(model: nn.Module, images: Any, batch_size: int = 32) -> np.ndarray:
    """Embeddings (N, D) of preprocessed images (N, C, H, W) (array or kiln Tensor): the
    input of the model's head (``model.forward_features``), computed in eval mode without
    gradients, ``batch_size`` images at a time. Fit a linear classifier on them."""
    features = getattr(model, "forward_features", None)
    if features is None:
        raise TypeError(f"extract_features: {type(model).__name__} has no forward_features")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be a positive int, got "
                         f"{batch_size!r}")
    array = images.detach().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"extract_features: expected images (N, C, H, W), got shape "
                         f"{array.shape}")
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for start in range(0, len(array), batch_size):
                chunk = np.ascontiguousarray(array[start:start + batch_size], np.float32)
                out.append(features(tensor(chunk)).numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out)
