"""Copies between devices, through the host.

    ToDevice  (a, target) -> a copy of a (same shape and dtype) as an array of the
              ``target`` backend's device; backward copies the gradient back

``Function.apply`` gives outputs their input's device: the caller (``Tensor.to``)
gives the output the target device.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function
from kiln.backends import Backend


def move(array: Any, source: Backend, target: Backend) -> Any:
    """``array`` of ``source``'s device as a new array of ``target``'s (never the same
    storage, even where both sides are host memory)."""
    moved = target.from_host(source.to_host(array))
    return moved.copy() if moved is array else moved


class ToDevice(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, target: Backend) -> Any:
        ctx.target = target
        return move(a, ctx.backend, target)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return move(g, ctx.target, ctx.backend), None
