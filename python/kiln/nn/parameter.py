"""Parameter: a Tensor that a Module registers as learnable when assigned as an attribute."""

from __future__ import annotations

import numpy as np

from kiln.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf tensor that ``Module.__setattr__`` registers in ``parameters()``.

    Args:
        data: a kiln.Tensor whose storage the parameter shares (not copied); None gives
            an empty float32 tensor.
        requires_grad: whether the parameter collects ``.grad`` (default True).
    """

    __slots__ = ()

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        if data is None:
            data = Tensor(np.empty((0,), np.float32))
        elif not isinstance(data, Tensor):
            raise TypeError(
                f"Parameter: data must be a kiln.Tensor or None, got {type(data).__name__}"
            )
        super().__init__(data._data, requires_grad=requires_grad)
        self._device = data._device

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
