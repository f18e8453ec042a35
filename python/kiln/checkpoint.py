"""Weights and training checkpoints in the safetensors format.

The format is written and read by ``kiln._safetensors`` (through the ``safetensors``
library: loading never unpickles, so a file cannot run code; writing is atomic, so a
crash mid-write leaves the old file whole, and a later save removes the partial
files that killed writers left behind); this module turns kiln.Tensors into its
arrays and back.

A training checkpoint is one such file: tensors ``model.<key>`` (the state_dict) and
``optimizer.state.<index>.<name>`` (the optimizer's tensor state), and metadata
``kiln.checkpoint`` (format version), ``optimizer`` / ``scheduler`` (their non-tensor
state as JSON), ``rng`` (kiln.random's state), ``epoch``, ``history``, ``extra``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kiln import _safetensors
from kiln._checks import int_arg
from kiln.random import get_rng_state, set_rng_state
from kiln.tensor import Tensor

__all__ = ["checkpoint_bytes", "load_checkpoint", "load_state", "save_checkpoint", "save_model",
           "save_state"]

_FORMAT = "1"


# ------------------------------------------------------------------ weights
def save_state(tensors: Mapping[str, Any], path: str | os.PathLike[str],
               metadata: Mapping[str, str] | None = None) -> None:
    """Writes ``{name: kiln.Tensor or np.ndarray}`` to ``path`` as safetensors, atomically.

    ``metadata`` is an optional ``{str: str}`` map stored in the header.
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save_state: expected a dict of tensors, got {type(tensors).__name__}")
    _safetensors.write({name: _as_array(value) for name, value in tensors.items()}, path,
                       metadata)


def load_state(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Reads a safetensors file into ``{name: kiln.Tensor}`` (writable, in file order).

    BF16 tensors come back as float32 (exactly); other dtypes keep theirs."""
    return {name: Tensor._wrap(array) for name, array in _safetensors.read(path)[0].items()}


def save_model(model: Any, path: str | os.PathLike[str],
               metadata: Mapping[str, str] | None = None) -> None:
    """Saves ``model.state_dict()`` (weights and buffers) to a safetensors file."""
    if not hasattr(model, "state_dict"):
        raise TypeError(f"save: expected a kiln.nn.Module, got {type(model).__name__}")
    save_state(model.state_dict(), path, metadata)


def _as_array(value: Any) -> Any:
    """A kiln.Tensor's array; anything else as it is, for ``_safetensors.write`` to
    check."""
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else value


# ---------------------------------------------------------------- JSON state
def _encode(value: Any, where: str) -> Any:
    """JSON-able form of state dicts: tuples and non-string-keyed dicts are tagged so
    they come back as they were."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _encode(value.item(), where)
    if isinstance(value, Tensor) and value.ndim == 0:
        return _encode(value.item(), where)
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{where}.{k}") for k, v in value.items()}
        return {"__items__": [[_encode(k, where), _encode(v, f"{where}.{k}")]
                              for k, v in value.items()]}
    raise TypeError(f"save_checkpoint: cannot store {where} of type {type(value).__name__} "
                    "(state must be numbers, strings, lists, tuples, dicts or tensors)")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if value.keys() == {"__tuple__"}:
            return tuple(_decode(v) for v in value["__tuple__"])
        if value.keys() == {"__items__"}:
            return {_decode(k): _decode(v) for k, v in value["__items__"]}
        return {k: _decode(v) for k, v in value.items()}
    return value


def _dumps(value: Any, where: str) -> str:
    return json.dumps(_encode(value, where))


# ------------------------------------------------------- training checkpoints
def save_checkpoint(path: str | os.PathLike[str], model: Any, optimizer: Any = None,
                    scheduler: Any = None, epoch: int = 0, history: Any = None,
                    extra: Any = None) -> None:
    """Saves everything needed to resume training exactly, in one safetensors file.

    Stores the model's state_dict, the optimizer's state (tensors as tensors, the rest
    as JSON), the scheduler's state_dict, kiln's RNG state, ``epoch`` (the number of
    epochs done), ``history`` and ``extra`` (JSON-able values: numbers, strings, lists,
    dicts). The file is replaced atomically.
    """
    tensors, metadata = _checkpoint(model, optimizer, scheduler, epoch, history, extra)
    save_state(tensors, path, metadata)


def checkpoint_bytes(model: Any, optimizer: Any = None, scheduler: Any = None, epoch: int = 0,
                     history: Any = None, extra: Any = None) -> bytes:
    """The file save_checkpoint would write, as bytes: a snapshot of the state now, for
    writing later (kiln._atomic.WriteBehind) while training goes on."""
    tensors, metadata = _checkpoint(model, optimizer, scheduler, epoch, history, extra)
    return _safetensors.serialize({name: _as_array(value) for name, value in tensors.items()},
                                  metadata, "save_checkpoint")


def _checkpoint(model: Any, optimizer: Any, scheduler: Any, epoch: int, history: Any,
                extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A checkpoint's tensors and metadata (see the module docstring)."""
    if not hasattr(model, "state_dict"):
        raise TypeError(f"save_checkpoint: model must be a kiln.nn.Module, "
                        f"got {type(model).__name__}")
    int_arg("save_checkpoint", "epoch", epoch, 0)
    tensors: dict[str, Any] = {f"model.{k}": v for k, v in model.state_dict().items()}
    metadata = {"kiln.checkpoint": _FORMAT, "epoch": str(int(epoch)),
                "rng": _dumps(get_rng_state(), "rng state"),
                "history": _dumps(history, "history"), "extra": _dumps(extra, "extra")}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[Any, dict[str, Any]] = {}
        for index, values in state["state"].items():
            for name, value in values.items():
                if isinstance(value, (Tensor, np.ndarray)) and np.ndim(value) > 0:
                    tensors[f"optimizer.state.{index}.{name}"] = value
                elif isinstance(value, Tensor):  # 0-d, e.g. Adam's step: keep its dtype
                    tensors[f"optimizer.state.{index}.{name}"] = value.detach().cpu().numpy()
                else:
                    scalars.setdefault(index, {})[name] = value
        metadata["optimizer"] = _dumps(
            {"class": type(optimizer).__name__, "param_groups": state["param_groups"],
             "state": scalars, "indices": list(state["state"])}, "optimizer state")
    if scheduler is not None:
        metadata["scheduler"] = _dumps(
            {"class": type(scheduler).__name__, "state": scheduler.state_dict()},
            "scheduler state")
    return tensors, metadata


def load_checkpoint(path: str | os.PathLike[str], model: Any, optimizer: Any = None,
                    scheduler: Any = None) -> dict[str, Any]:
    """Restores a ``save_checkpoint`` file into ``model`` (and ``optimizer``, ``scheduler``
    when given) and restores kiln's RNG state.

    Returns ``{"epoch": int, "history": ..., "extra": ...}``. Raises ValueError naming
    the file when it is not a kiln checkpoint, is corrupt, or holds another architecture
    (or another optimizer or scheduler class); model, optimizer and scheduler are then
    left as they were.
    """
    arrays, metadata = _safetensors.read(path)
    where = f"load_checkpoint: {path}"
    if metadata.get("kiln.checkpoint") != _FORMAT:
        raise ValueError(f"{where} is not a kiln training checkpoint (no 'kiln.checkpoint' "
                         "metadata; use kiln.load_state for weights alone)")
    try:
        epoch = int(metadata["epoch"])
        rng = _decode(json.loads(metadata["rng"]))
        history = _decode(json.loads(metadata["history"]))
        extra = _decode(json.loads(metadata["extra"]))
        saved_opt, saved_sched = (
            _decode(json.loads(metadata[key])) if key in metadata else None
            for key in ("optimizer", "scheduler"))
    except (KeyError, ValueError) as error:
        raise ValueError(f"{where}: damaged metadata ({error})") from None
    model_state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    expected = model.state_dict()
    problems = sorted(set(expected) ^ set(model_state))
    problems += [f"{k}: {model_state[k].shape} in the file, {tuple(v.shape)} in the model"
                 for k, v in expected.items()
                 if k in model_state and model_state[k].shape != tuple(v.shape)]
    if problems:
        raise ValueError(f"{where} holds a different architecture than "
                         f"{type(model).__name__}: {'; '.join(problems[:5])}"
                         + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    for label, obj, saved in (("optimizer", optimizer, saved_opt),
                              ("scheduler", scheduler, saved_sched)):
        if obj is None:
            continue
        if saved is None:
            raise ValueError(f"{where} holds no {label} state")
        if saved["class"] != type(obj).__name__:
            raise ValueError(f"{where} holds the state of a {saved['class']} {label}, "
                             f"not of a {type(obj).__name__}")
    state: dict[Any, dict[str, Any]] = {}
    if optimizer is not None:
        state = {index: dict(saved_opt["state"].get(index, {})) for index in saved_opt["indices"]}
        prefix = "optimizer.state."
        for key, array in arrays.items():
            if key.startswith(prefix):
                index, name = key[len(prefix):].split(".", 1)
                state.setdefault(int(index), {})[name] = array
    undo = _snapshot(model, optimizer, scheduler)
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict({"state": state, "param_groups": saved_opt["param_groups"]})
        if scheduler is not None:
            scheduler.load_state_dict(saved_sched["state"])
    except (ValueError, TypeError, KeyError) as error:
        undo()
        raise ValueError(f"{where} does not fit: {error}") from None
    set_rng_state(rng)
    return {"epoch": epoch, "history": history, "extra": extra}


def _snapshot(model: Any, optimizer: Any, scheduler: Any) -> Any:
    """A function that puts model, optimizer and scheduler back as they are now."""
    weights = {k: v.cpu().numpy().copy() for k, v in model.state_dict().items()}
    opt_state = None
    if optimizer is not None:
        saved = optimizer.state_dict()
        opt_state = {"param_groups": saved["param_groups"], "state": {
            index: {k: v.cpu().numpy().copy() if isinstance(v, Tensor) else v
                    for k, v in values.items()}
            for index, values in saved["state"].items()}}
    sched_state = None if scheduler is None else scheduler.state_dict()

    def undo() -> None:
        model.load_state_dict(weights)
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)
        if scheduler is not None:
            scheduler.load_state_dict(sched_state)

    return undo
