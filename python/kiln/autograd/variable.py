"""``Variable``: PyTorch's deprecated wrapper, kept so that old programs run.

Since PyTorch 0.4 every tensor is a Variable: ``Variable(t, requires_grad=True)``
returns a new tensor sharing ``t``'s memory (``t`` itself is left alone) and
``isinstance(x, Variable)`` is true for every tensor.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import tensor_type

__all__ = ["Variable"]


class _VariableMeta(type):
    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, tensor_type())


class Variable(metaclass=_VariableMeta):
    """``Variable(data, requires_grad=False, volatile=False)`` -> a tensor sharing
    ``data``'s memory, detached from its graph, with ``requires_grad`` set
    (``volatile`` is accepted and ignored, as in PyTorch)."""

    def __new__(cls, data: Any, requires_grad: bool = False, volatile: bool = False) -> Any:
        if not isinstance(data, tensor_type()):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        return data.detach().requires_grad_(requires_grad)
