"""Argument parsing shared by the functions that take "a Tensor or an iterable of Tensors"
(gradient clipping, weight penalties)."""

from __future__ import annotations

from typing import Any

from kiln.tensor import Tensor


def tensor_list(tensors: Any, op: str) -> list[Tensor]:
    """``tensors`` (a Tensor, or an iterable such as ``model.parameters()``) as a list in
    which each tensor appears once; TypeError naming ``op`` for anything else."""
    if isinstance(tensors, Tensor):
        return [tensors]
    try:
        items = list(tensors)
    except TypeError:
        raise TypeError(
            f"{op}: expected a Tensor or an iterable of Tensors, got {type(tensors).__name__}"
        ) from None
    for t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected Tensors, got an element of type {type(t).__name__}")
    return list({id(t): t for t in items}.values())
