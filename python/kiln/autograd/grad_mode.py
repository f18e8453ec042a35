"""Switches for recording the autograd tape (per thread, as in PyTorch)."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


class _State(threading.local):
    # A class attribute is every new thread's default: reading it costs a plain
    # attribute lookup, where getattr(local, name, default) on a thread that never set
    # it raises and catches AttributeError on every op (a microsecond each).
    enabled = True


_state = _State()


def is_grad_enabled() -> bool:
    """True when differentiable ops record their backward on the tape."""
    return _state.enabled


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class set_grad_enabled:
    """Context manager (and decorator) that sets recording on or off."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = is_grad_enabled()
        _set_enabled(self.mode)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        _set_enabled(self.prev)

    def __call__(self, fn: _F) -> _F:
        mode = self.mode
        _set_enabled(self.prev)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class _GradMode:
    mode = True

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _set_enabled(self.mode)

    def __exit__(self, *exc: object) -> None:
        _set_enabled(self.prev)

    def _fresh(self) -> Any:
        """A new context manager doing what this one does (one per decorated call)."""
        return set_grad_enabled(self.mode)

    def __call__(self, fn: _F) -> _F:
        fresh = self._fresh

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """``with kiln.no_grad():`` ops inside record nothing; also usable as a decorator."""

    mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a ``no_grad`` block."""

    mode = True


class inference_mode(_GradMode):
    """``with kiln.inference_mode():`` (or as a decorator, with or without parentheses):
    ops inside record nothing, as in ``no_grad``; ``inference_mode(False)`` changes
    nothing. kiln has no separate inference tensors: results are ordinary tensors."""

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # @inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode: Any = True) -> None:
        self.enabled = bool(mode)

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        if self.enabled:
            _set_enabled(False)

    def _fresh(self) -> Any:
        return inference_mode(self.enabled)
