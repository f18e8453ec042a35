"""Helpers of kiln.optim.lr_scheduler: argument checks that name the scheduler, the argument and
the value, per-group values, the momentum/beta1 switch and the 1cycle annealing curves."""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import types
from collections.abc import Callable, Iterator
from typing import Any

from kiln._checks import real_arg
from kiln.optim.optimizer import Optimizer


def check_optimizer(op: str, optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{op}: {type(optimizer).__name__} is not an Optimizer")
    return optimizer


def per_group(op: str, name: str, optimizer: Optimizer, value: Any,
               check: Callable[[str, str, Any], Any]) -> list[Any]:
    """One value per param group: a list/tuple of that length, or one value for every group."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{op}: {name} has {len(value)} values but the optimizer has "
                             f"{groups} param groups")
        values = list(value)
    else:
        values = [value] * groups
    return [check(op, name, v) for v in values]


def non_negative(op: str, name: str, value: Any) -> Any:
    return real_arg(op, name, value, low=0)


def group_lrs(optimizer: Optimizer) -> list[Any]:
    return [group["lr"] for group in optimizer.param_groups]


def callable_state(fn: Callable[..., Any] | None) -> dict[str, Any] | None:
    """PyTorch's rule for user callables in a state_dict: a callable object's attributes are saved,
    a plain function or lambda (code, not state) is not."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    return copy.deepcopy(fn.__dict__)


@contextlib.contextmanager
def flag(scheduler: Any, name: str) -> Iterator[None]:
    setattr(scheduler, name, True)
    try:
        yield
    finally:
        setattr(scheduler, name, False)


def track_optimizer_steps(optimizer: Optimizer) -> None:
    """Wrap the optimizer class's step once so a scheduler can warn when it is stepped before the
    optimizer (the schedule's first value would be skipped). The class, not the instance, is
    wrapped: a deep copy or pickle of the optimizer carries no closure over the original."""
    cls = type(optimizer)
    func = getattr(cls, "step", None)
    if not inspect.isfunction(func) or getattr(func, "_kiln_counted", False):
        return

    @functools.wraps(func)
    def counted_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._opt_called = True
        return func(self, *args, **kwargs)

    counted_step._kiln_counted = True
    cls.step = counted_step


def callable_arg(op: str, name: str, value: Any) -> Any:
    if not callable(value):
        raise TypeError(f"{op}: {name} must be callable, got {type(value).__name__}")
    return value



def momentum_key(op: str, optimizer: Optimizer) -> bool:
    """True when the optimizer cycles beta1 (Adam family), False for 'momentum' (SGD, RMSprop)."""
    defaults = optimizer.defaults
    if "momentum" not in defaults and "betas" not in defaults:
        raise ValueError(f"{op}: cycle_momentum=True needs an optimizer with 'momentum' or "
                         f"'betas' ({type(optimizer).__name__} has neither); pass "
                         "cycle_momentum=False")
    return "betas" in defaults


def momentum_arg(op: str, name: str, value: Any) -> Any:
    return real_arg(op, name, value, low=0, high=1)


def set_momentum(group: dict[str, Any], value: float, use_beta1: bool) -> None:
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value



def anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


ANNEAL = {"cos": anneal_cos, "linear": anneal_linear}
