"""Copies between devices: through the host, or directly between two devices of one
backend (its ``copy_from_peer``: cuda:0 to cuda:1 as a peer copy).

    ToDevice  (a, target, non_blocking=False) -> a copy of a (same shape and dtype) as
              an array of the ``target`` backend's device; backward copies the
              gradient back

``Function.apply`` gives outputs their input's device: the caller (``Tensor.to``)
gives the output the target device.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function
from kiln.backends import Backend


def move(array: Any, source: Backend, target: Backend, non_blocking: bool = False) -> Any:
    """``array`` of ``source``'s device as a new array of ``target``'s (never the same
    storage, even where both sides are host memory); ``non_blocking``: a copy from pinned
    host memory may still be under way when this returns (ordered before later work)."""
    if source is target:  # two devices of one backend: device to device
        return target.copy_from_peer(array)
    moved = target.from_host(source.to_host(array), non_blocking)
    return moved.copy() if moved is array else moved


class ToDevice(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, target: Backend, non_blocking: bool = False) -> Any:
        ctx.target = target
        return move(a, ctx.backend, target, non_blocking)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return move(g, ctx.target, ctx.backend), None, None
