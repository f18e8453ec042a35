"""Flatten and Unflatten: reshape a range of dimensions (differentiable, no copy)."""

from __future__ import annotations

from collections.abc import Sequence

from kiln._checks import int_arg, is_int
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["Flatten", "Unflatten"]


def _check_tensor(input: object, op: str) -> Tensor:  # noqa: A002
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a kiln.Tensor, got {type(input).__name__}")
    return input


class Flatten(Module):
    """Merges dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) with the defaults."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            int_arg("Flatten", name, value)
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return _check_tensor(input, "Flatten").flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size``: (N, 12) -> (N, 3, 2, 2) for
    ``Unflatten(1, (3, 2, 2))``; one entry may be -1."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        int_arg("Unflatten", "dim", dim)
        if not isinstance(unflattened_size, (tuple, list)) or not all(
            is_int(s) for s in unflattened_size
        ):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got "
                            f"{unflattened_size!r}")
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        shape = _check_tensor(input, "Unflatten").shape
        d = self.dim + len(shape) if self.dim < 0 else self.dim
        if not 0 <= d < len(shape):
            raise IndexError(f"Unflatten: dim {self.dim} out of range for input of shape "
                             f"{tuple(shape)}")
        try:
            return input.reshape(shape[:d] + self.unflattened_size + shape[d + 1:])
        except RuntimeError as e:
            raise ValueError(f"Unflatten: can't split dim {self.dim} of input {tuple(shape)} "
                             f"into {self.unflattened_size}") from e

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
