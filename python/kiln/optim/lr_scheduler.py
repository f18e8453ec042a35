"""Learning-rate schedules with PyTorch's names, arguments and sequences (torch.optim.lr_scheduler).

A scheduler owns nothing but a counter and a few constants: it writes ``group["lr"]`` (and, for
CyclicLR and OneCycleLR, ``group["momentum"]`` or ``group["betas"][0]``) of its optimizer's param
groups. Call ``scheduler.step()`` after ``optimizer.step()``, once per epoch or once per batch as
the schedule is meant; ``ReduceLROnPlateau.step(metric)`` takes the monitored value.

Every PyTorch scheduler computes the same recursive update PyTorch does (e.g. CosineAnnealingLR
multiplies the current lr by a ratio of cosines rather than evaluating the closed form), so the
sequences agree with PyTorch to the last bit and an outside change to ``group["lr"]`` propagates
the same way. ``state_dict()`` holds every attribute except the optimizer (plain Python values,
deep-copied); save and load the optimizer's state with it.

Beyond PyTorch (the lecture's schedules): ``InverseTimeLR`` (lr0 / (1 + k t)), ``InverseSqrtLR``
(lr0 / sqrt(t) after an optional linear warm-up), ``warmup(scheduler, steps)`` (a linear ramp from
0 in front of any schedule) and ``scale_lr_for_batch_size`` (the linear scaling rule). Their
exact conventions are in their docstrings and in docs/schedules.md.
"""

from __future__ import annotations

import copy
import math
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, SupportsFloat

from kiln._checks import int_arg, real_arg
from kiln.optim._schedules import (
    ANNEAL,
    callable_arg,
    callable_state,
    check_optimizer,
    flag,
    group_lrs,
    momentum_arg,
    momentum_key,
    non_negative,
    per_group,
    set_momentum,
    track_optimizer_steps,
)
from kiln.optim.optimizer import Optimizer

__all__ = [
    "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
    "CyclicLR", "ExponentialLR", "InverseSqrtLR", "InverseTimeLR", "LRScheduler", "LambdaLR",
    "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR", "PolynomialLR",
    "ReduceLROnPlateau", "SequentialLR", "StepLR", "WarmupLR", "scale_lr_for_batch_size", "warmup",
]

_EPOCH_DEPRECATED = (
    "passing an epoch to scheduler.step() is deprecated (as in PyTorch): it sets last_epoch and "
    "uses the closed form where the schedule has one; call step() without arguments instead"
)


# ---------------------------------------------------------------------------------------------
# Base class


class LRScheduler:
    """Base class: subclasses compute the next learning rates in ``get_lr()``.

    ``last_epoch`` counts the ``step()`` calls (0 after construction, which performs step 0);
    ``base_lrs`` are the groups' ``initial_lr`` (set from their ``lr`` when ``last_epoch=-1``).
    Passing ``last_epoch >= 0`` resumes a schedule and needs ``initial_lr`` in every group.
    """

    _get_lr_called_within_step = False
    _is_initial = False
    _not_saved: tuple[str, ...] = ("optimizer", "_get_lr_called_within_step", "_is_initial")

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        op = type(self).__name__
        self.optimizer = check_optimizer(op, optimizer)
        int_arg(op, "last_epoch", last_epoch, -1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{op}: param_groups[{i}] has no 'initial_lr' but last_epoch={last_epoch} "
                        "resumes a schedule: load the optimizer's state_dict first, or pass "
                        "last_epoch=-1 to start a new schedule")
        self.base_lrs: list[Any] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        track_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        with flag(self, "_is_initial"):
            self.step()

    def get_lr(self) -> list[Any]:
        """The learning rates for the current ``last_epoch`` (called by ``step``; to read the
        current rates use ``get_last_lr()``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def get_last_lr(self) -> list[Any]:
        """The learning rates the last ``step()`` set, one per param group."""
        return list(self._last_lr)

    def _warn_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn("to read the learning rates the scheduler set, use get_last_lr(); "
                          "get_lr() computes the next ones", UserWarning, stacklevel=3)

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one step (call after ``optimizer.step()``)."""
        if self._step_count == 1:
            if not getattr(self.optimizer.step, "_kiln_counted", False):
                warnings.warn("optimizer.step() was replaced after the scheduler was created; "
                              "make sure it is called before scheduler.step()", UserWarning,
                              stacklevel=2)
            elif not getattr(self.optimizer, "_opt_called", False):
                warnings.warn("scheduler.step() was called before optimizer.step(): the first "
                              "learning rate of the schedule is skipped. Call optimizer.step() "
                              "first", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(_EPOCH_DEPRECATED, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        with flag(self, "_get_lr_called_within_step"):
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        self._set_lrs(values)

    def _set_lrs(self, values: Sequence[Any]) -> None:
        groups = self.optimizer.param_groups
        if len(values) != len(groups):
            raise ValueError(f"{type(self).__name__}: the optimizer has {len(groups)} param groups "
                             f"but the schedule has {len(values)} (a group added after the "
                             "scheduler was created? create the scheduler after the groups)")
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = group_lrs(self.optimizer)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (and code: plain functions are not saved)."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key not in self._not_saved}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` of a scheduler of the same class and arguments."""
        op = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{op}: expected a dict, got {type(state_dict).__name__}")
        unknown = sorted(str(key) for key in state_dict if key not in self.__dict__)
        if unknown:
            raise ValueError(f"{op}: unexpected keys {unknown} (a state_dict of another "
                             "scheduler class?)")
        self.__dict__.update({key: copy.deepcopy(value) for key, value in state_dict.items()
                              if key not in self._not_saved})


# the pre-1.14 name, which older code subclasses
_LRScheduler = LRScheduler


class _LambdaScheduler(LRScheduler):
    """LambdaLR and MultiplicativeLR: one user function of the epoch per param group."""

    _not_saved = LRScheduler._not_saved + ("lr_lambdas",)

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int) -> None:
        op = type(self).__name__
        check_optimizer(op, optimizer)
        lambdas = per_group(op, "lr_lambda", optimizer, lr_lambda, callable_arg)
        self.lr_lambdas: list[Callable[[int], float]] = lambdas
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [callable_state(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, state_dict.get("lr_lambdas", ()), strict=False):
            if saved is not None:
                fn.__dict__.update(copy.deepcopy(saved))


class LambdaLR(_LambdaScheduler):
    """lr = initial_lr * lr_lambda(epoch), with one function or one per param group."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """lr_t = lr_{t-1} * lr_lambda(t) for t >= 1 (the lr is left unchanged at construction)."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self._is_initial:
            return group_lrs(self.optimizer)
        return [group["lr"] * fn(self.last_epoch)
                for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size) (applied as a decay every step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = int_arg("StepLR", "step_size", step_size, 1)
        self.gamma = real_arg("StepLR", "gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return group_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma ** (number of milestones <= epoch).

    ``milestones`` must be non-decreasing non-negative integers; a milestone listed n times decays
    by gamma ** n there (PyTorch's rule).
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if not isinstance(milestones, Iterable) or isinstance(milestones, (str, bytes)):
            raise TypeError(f"MultiStepLR: milestones must be a list of integers, got "
                            f"{type(milestones).__name__}")
        values = [int_arg("MultiStepLR", "milestones", m, 0) for m in milestones]
        if any(b < a for a, b in zip(values, values[1:])):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {values}")
        self.milestones = Counter(values)
        self.gamma = real_arg("MultiStepLR", "gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self.last_epoch not in self.milestones:
            return group_lrs(self.optimizer)
        decay = self.gamma ** self.milestones[self.last_epoch]
        return [group["lr"] * decay for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """lr = initial_lr * factor for epoch < total_iters, then initial_lr."""

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        self.factor = real_arg("ConstantLR", "factor", factor, low=0, high=1, low_open=True)
        self.total_iters = int_arg("ConstantLR", "total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return group_lrs(self.optimizer)
        return [group["lr"] * (1.0 / self.factor) for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr = initial_lr * f(epoch), f linear from start_factor (epoch 0) to end_factor (total_iters)
    and constant after."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = real_arg("LinearLR", "start_factor", start_factor, low=0, high=1,
                                      low_open=True)
        self.end_factor = real_arg("LinearLR", "end_factor", end_factor, low=0, high=1)
        self.total_iters = int_arg("LinearLR", "total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return group_lrs(self.optimizer)
        delta = self.end_factor - self.start_factor
        ratio = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_epoch - 1) * delta)
        return [group["lr"] * ratio for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base * (self.start_factor + (self.end_factor - self.start_factor)
                        * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr = initial_lr * gamma ** epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = real_arg("ExponentialLR", "gamma", gamma, low=0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self._is_initial:
            return group_lrs(self.optimizer)
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr = initial_lr * (1 - min(epoch, total_iters) / total_iters) ** power."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        self.total_iters = int_arg("PolynomialLR", "total_iters", total_iters, 1)
        self.power = real_arg("PolynomialLR", "power", power, low=0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        if self._is_initial or self.last_epoch > self.total_iters:
            return group_lrs(self.optimizer)
        decay = ((1.0 - self.last_epoch / self.total_iters)
                 / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * decay for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [base * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr_t = eta_min + (initial_lr - eta_min) * (1 + cos(pi t / T_max)) / 2, without restarts (past
    T_max the cosine keeps going and the lr rises again, as in PyTorch).

    Computed recursively from the current lr, as PyTorch does, so the sequences match bit for bit
    and an outside change of ``group["lr"]`` carries on: lr_t = eta_min + (lr_{t-1} - eta_min)
    * (1 + cos(pi t / T_max)) / (1 + cos(pi (t - 1) / T_max)).
    """

    def __init__(self, optimizer: Optimizer, T_max: float, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = real_arg("CosineAnnealingLR", "T_max", T_max, low=0, low_open=True)
        self.eta_min = real_arg("CosineAnnealingLR", "eta_min", eta_min, low=0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        t, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return group_lrs(self.optimizer)
        if self._step_count == 1 and t > 0:
            # first step of a resumed schedule: the closed form (there is no previous lr of ours)
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / t_max)) / 2
                    for base in self.base_lrs]
        if (t - 1 - t_max) % (2 * t_max) == 0:
            # the previous lr sat at the trough (cos = -1): the ratio below would divide by zero
            return [group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        ratio = (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self) -> list[Any]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


# ---------------------------------------------------------------------------------------------
# Schedules that steer momentum too (cyclical learning rates and 1cycle)


class CyclicLR(LRScheduler):
    """Cyclical learning rate (Smith 2017): the lr moves linearly from base_lr up to max_lr over
    step_size_up steps and back down over step_size_down steps, the amplitude scaled per cycle
    ('triangular': 1, 'triangular2': halved each cycle) or per step ('exp_range': gamma ** step).
    With cycle_momentum the momentum (or Adam's beta1) moves inversely between max_momentum and
    base_momentum. Stepped once per batch."""

    _not_saved = LRScheduler._not_saved + ("_scale_fn_custom",)

    def __init__(self, optimizer: Optimizer, base_lr: float | list[float],
                 max_lr: float | list[float], step_size_up: float = 2000,
                 step_size_down: float | None = None, mode: str = "triangular", gamma: float = 1.0,
                 scale_fn: Callable[[float], float] | None = None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum: float | list[float] = 0.8,
                 max_momentum: float | list[float] = 0.9, last_epoch: int = -1) -> None:
        op = "CyclicLR"
        check_optimizer(op, optimizer)
        base_lrs = per_group(op, "base_lr", optimizer, base_lr, non_negative)
        self.max_lrs = per_group(op, "max_lr", optimizer, max_lr, non_negative)
        up = float(real_arg(op, "step_size_up", step_size_up, low=0, low_open=True))
        down = up if step_size_down is None else float(
            real_arg(op, "step_size_down", step_size_down, low=0, low_open=True))
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if scale_fn is None and mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(f"CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range' "
                             f"(or pass scale_fn), got {mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"CyclicLR: scale_fn must be callable, got {type(scale_fn).__name__}")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"CyclicLR: scale_mode must be 'cycle' or 'iterations', "
                             f"got {scale_mode!r}")
        self.mode = mode
        self.gamma = real_arg(op, "gamma", gamma, low=0, low_open=True)
        self._scale_fn_custom = scale_fn
        # the built-in modes fix the scale mode, whatever was passed (PyTorch's rule)
        self.scale_mode = scale_mode if scale_fn is not None else (
            "iterations" if mode == "exp_range" else "cycle")
        int_arg(op, "last_epoch", last_epoch, -1)
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self.use_beta1 = momentum_key(op, optimizer)
            self.base_momentums = per_group(op, "base_momentum", optimizer, base_momentum,
                                             momentum_arg)
            self.max_momentums = per_group(op, "max_momentum", optimizer, max_momentum,
                                            momentum_arg)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
            if self.cycle_momentum:
                for low, high, group in zip(self.base_momentums, self.max_momentums,
                                            optimizer.param_groups):
                    set_momentum(group, high, self.use_beta1)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)
        # the initial step used the groups' initial_lr; from here on the cycle starts at base_lr
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        """The amplitude scale at cycle number (or step) x."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [base + (high - base) * height * scale
               for base, high in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for low, high, group in zip(self.base_momentums, self.max_momentums,
                                        self.optimizer.param_groups):
                set_momentum(group, high - (high - low) * height * scale, self.use_beta1)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_scale_fn_custom"] = callable_state(self._scale_fn_custom)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        saved = state_dict.get("_scale_fn_custom")
        if saved is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(copy.deepcopy(saved))


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018), stepped once per batch for total_steps steps (or
    epochs * steps_per_epoch). The lr rises from max_lr / div_factor to max_lr over the first
    pct_start of the steps, then anneals to max_lr / div_factor / final_div_factor ('cos' or
    'linear'); three_phase=True comes back down to the start value symmetrically first and
    anneals to the minimum in a third phase. Momentum (or beta1) moves inversely between
    max_momentum and base_momentum.

    Where PyTorch divides by zero (a phase of zero length, e.g. pct_start * total_steps == 1),
    that phase counts as already complete: its end value is used.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85,
                 max_momentum: float | list[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        op = "OneCycleLR"
        check_optimizer(op, optimizer)
        if total_steps is not None:
            self.total_steps = int_arg(op, "total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (int_arg(op, "epochs", epochs, 1)
                                * int_arg(op, "steps_per_epoch", steps_per_epoch, 1))
        else:
            raise ValueError("OneCycleLR: pass total_steps, or both epochs and steps_per_epoch")
        pct_start = real_arg(op, "pct_start", pct_start, low=0, high=1)
        if anneal_strategy not in ANNEAL:
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        div_factor = real_arg(op, "div_factor", div_factor, low=0, low_open=True)
        final_div_factor = real_arg(op, "final_div_factor", final_div_factor, low=0,
                                     low_open=True)
        # each phase: the step it ends at and the group keys of its start and end values
        warm_end = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if three_phase:
            self._schedule_phases = [
                (warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                 "base_momentum", "max_momentum"),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                (warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = per_group(op, "max_lr", optimizer, max_lr, non_negative)
        int_arg(op, "last_epoch", last_epoch, -1)
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self.use_beta1 = momentum_key(op, optimizer)
            highs = per_group(op, "max_momentum", optimizer, max_momentum, momentum_arg)
            lows = per_group(op, "base_momentum", optimizer, base_momentum, momentum_arg)
        if last_epoch == -1:
            for high, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = high / div_factor
                group["max_lr"] = high
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                for high, low, group in zip(highs, lows, optimizer.param_groups):
                    set_momentum(group, high, self.use_beta1)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def _phase(self, step: int) -> tuple[float, tuple[Any, ...]]:
        """The phase that step falls in and how far into it (0 to 1)."""
        start = 0.0
        for phase in self._schedule_phases[:-1]:
            if step <= phase[0]:
                break
            start = phase[0]
        else:
            phase = self._schedule_phases[-1]
        end = phase[0]
        return ((step - start) / (end - start) if end != start else 1.0), phase

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times but total_steps is "
                             f"{self.total_steps}")
        anneal = ANNEAL[self.anneal_strategy]
        pct, (_, lr_from, lr_to, m_from, m_to) = self._phase(step)
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(anneal(group[lr_from], group[lr_to], pct))
            if self.cycle_momentum:
                set_momentum(group, anneal(group[m_from], group[m_to], pct), self.use_beta1)
        return lrs


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2017): lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi T_cur /
    T_i)) / 2, where T_cur counts the epochs since the last restart and T_i = T_0 * T_mult ** i is
    the length of the i-th period. ``step(epoch)`` accepts a fractional epoch (e.g. epoch + batch /
    batches_per_epoch) and places it in its period exactly (PyTorch finds the period through a
    floating-point logarithm, which can land one period early at exact boundaries)."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        op = "CosineAnnealingWarmRestarts"
        self.T_0 = int_arg(op, "T_0", T_0, 1)
        self.T_i = T_0
        self.T_mult = int_arg(op, "T_mult", T_mult, 1)
        self.eta_min = real_arg(op, "eta_min", eta_min, low=0)
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur
                                                                     / self.T_i)) / 2
                for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one step, or jump to ``epoch`` (may be fractional, e.g. per batch)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            real_arg("CosineAnnealingWarmRestarts.step", "epoch", epoch, low=0, high=math.inf,
                      high_open=True)
            self._place(epoch)
        self.last_epoch = math.floor(epoch)
        with flag(self, "_get_lr_called_within_step"):
            self._set_lrs(self.get_lr())

    def _place(self, epoch: float) -> None:
        if epoch < self.T_0:
            self.T_i, self.T_cur = self.T_0, epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:
            # period n starts at T_0 (T_mult^n - 1) / (T_mult - 1); integer arithmetic finds n
            n, start, length = 0, 0, self.T_0
            while start + length <= epoch:
                n, start, length = n + 1, start + length, length * self.T_mult
            self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** n


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when the monitored metric has not improved for more than
    ``patience`` steps (improved: below best * (1 - threshold) in 'min'/'rel' mode, below
    best - threshold in 'abs' mode; mirrored for 'max'). After a reduction, ``cooldown`` steps
    ignore bad epochs. The lr never goes below ``min_lr`` (one value or one per group), and a
    reduction smaller than ``eps`` is skipped. Call ``step(metric)`` once per evaluation."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | list[float] = 0, eps: float = 1e-8) -> None:
        op = "ReduceLROnPlateau"
        self.factor = real_arg(op, "factor", factor, low=0, high=1, high_open=True)
        self.optimizer = check_optimizer(op, optimizer)
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
        else:
            self.default_min_lr = non_negative(op, "min_lr", min_lr)
        self.min_lrs = per_group(op, "min_lr", optimizer, min_lr, non_negative)
        self.patience = int_arg(op, "patience", patience, 0)
        self.cooldown = int_arg(op, "cooldown", cooldown, 0)
        self.eps = non_negative(op, "eps", eps)
        self.last_epoch = 0
        self._last_lr = group_lrs(optimizer)
        self._init_is_better(mode, non_negative(op, "threshold", threshold), threshold_mode)
        self._reset()

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', "
                             f"got {threshold_mode!r}")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.threshold_mode == "rel":
            if self.mode == "min":
                return a < best * (1.0 - self.threshold)
            return a > best * (self.threshold + 1.0)
        if self.mode == "min":
            return a < best - self.threshold
        return a > best + self.threshold

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one value of the monitored metric (a number or a one-element tensor)."""
        try:
            current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        except (TypeError, ValueError) as err:
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number or a one-element "
                            f"tensor, got {type(metrics).__name__}") from err
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(_EPOCH_DEPRECATED, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = group_lrs(self.optimizer)

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups but min_lr "
                    f"has {len(self.min_lrs)} values (a group was added after the scheduler was "
                    "created): set scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


# ---------------------------------------------------------------------------------------------
# Schedulers made of schedulers


class _Composite(LRScheduler):
    """Holds child schedulers in ``_schedulers``; their states nest in its state_dict."""

    _not_saved = LRScheduler._not_saved + ("_schedulers",)
    _schedulers: list[LRScheduler]

    def _adopt(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler]) -> None:
        op = type(self).__name__
        if not isinstance(schedulers, Sequence) or len(schedulers) < 1:
            raise ValueError(f"{op}: expects a non-empty list of schedulers, got {schedulers!r}")
        for i, child in enumerate(schedulers):
            if not isinstance(child, LRScheduler):
                raise TypeError(f"{op}: schedulers[{i}] is a {type(child).__name__}, "
                                "not a scheduler")
            if isinstance(child, (ReduceLROnPlateau, WarmupLR)):
                raise ValueError(f"{op}: schedulers[{i}] is a {type(child).__name__}, which "
                                 "cannot be combined this way (ReduceLROnPlateau needs a metric; "
                                 "wrap the whole schedule in warmup(...) instead)")
            if child.optimizer is not optimizer:
                raise ValueError(f"{op}: schedulers[{i}] ({type(child).__name__}) steers another "
                                 "optimizer; all schedulers must share one")
        self.optimizer = optimizer
        self._schedulers = list(schedulers)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [child.state_dict() for child in self._schedulers]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        saved = state_dict.get("_schedulers", [])
        if len(saved) != len(self._schedulers):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state holds "
                             f"{len(saved)} schedulers, this one has {len(self._schedulers)}")
        for child, child_state in zip(self._schedulers, saved):
            child.load_state_dict(child_state)


class SequentialLR(_Composite):
    """Run ``schedulers[i]`` from milestone ``i - 1`` (0 for the first) to milestone ``i``; at each
    milestone the next scheduler restarts at its epoch 0 (from its closed form where it has one).
    The children's own initial steps are undone, as in PyTorch."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1) -> None:
        op = "SequentialLR"
        self._adopt(check_optimizer(op, optimizer), schedulers)
        if not isinstance(milestones, Sequence):
            raise TypeError(f"SequentialLR: milestones must be a list of integers, got "
                            f"{type(milestones).__name__}")
        values = [int_arg(op, "milestones", m, 1) for m in milestones]
        if len(values) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need "
                             f"{len(schedulers) - 1} milestones, got {len(values)}")
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"SequentialLR: milestones must be increasing, got {values}")
        int_arg(op, "last_epoch", last_epoch, -1)
        self._milestones = values
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def recursive_undo(self, sched: LRScheduler | None = None) -> None:
        """Undo the initial step of every (nested) child scheduler: its last_epoch goes back
        by one."""
        scheduler = self if sched is None else sched
        if isinstance(scheduler, _Composite):
            for child in scheduler._schedulers:
                self.recursive_undo(child)
        else:
            scheduler.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """Advance the active scheduler (restarting the next one at a milestone)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        active = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            active._update_lr(0)
        else:
            active.step()
        self._last_lr = active.get_last_lr()


class ChainedScheduler(_Composite):
    """Step every scheduler in turn on each ``step()``: their multiplicative effects compose (e.g.
    ConstantLR warm-up times ExponentialLR decay)."""

    def __init__(self, schedulers: Sequence[LRScheduler],
                 optimizer: Optimizer | None = None) -> None:
        if isinstance(schedulers, Sequence) and schedulers and optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        if optimizer is not None:
            check_optimizer("ChainedScheduler", optimizer)
        self._adopt(optimizer, schedulers)
        self._last_lr = group_lrs(optimizer)

    def step(self) -> None:  # type: ignore[override]
        """Step each scheduler once, in order."""
        for child in self._schedulers:
            child.step()
        self._last_lr = group_lrs(self.optimizer)


class WarmupLR(_Composite):
    """Linear warm-up in front of any scheduler; build it with ``warmup(scheduler, steps)``.

    With t the number of ``step()`` calls so far (0 after construction) and target the lrs the
    wrapped scheduler set at its own step 0 (normally the base lrs): lr_t = target * t / steps
    for t < steps (0, 1/steps, ..., (steps-1)/steps of the target), and from t = steps on the
    wrapped scheduler runs as if it had started at step 0 at t = steps: its step k happens at
    t = steps + k. ``step(*args)`` passes its arguments to the wrapped scheduler once it runs (a
    ReduceLROnPlateau metric is ignored during warm-up). steps=0 is no warm-up.
    """

    def __init__(self, scheduler: LRScheduler, steps: int) -> None:
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"warmup: scheduler must be a learning-rate scheduler, got "
                            f"{type(scheduler).__name__}")
        if isinstance(scheduler, WarmupLR):
            raise ValueError("warmup: the scheduler already has a warm-up")
        if getattr(scheduler, "last_epoch", 0) != 0:
            raise ValueError(f"warmup: wrap a newly created scheduler (this one is at step "
                             f"{scheduler.last_epoch}): the warm-up hands over at its step 0")
        self.optimizer = scheduler.optimizer
        self._schedulers = [scheduler]
        self.warmup_steps = int_arg("warmup", "steps", steps, 0)
        self.target_lrs = scheduler.get_last_lr()
        self.last_epoch = 0
        self._ramp()

    def _ramp(self) -> None:
        t = self.last_epoch
        if t < self.warmup_steps:
            self._set_lrs([lr * t / self.warmup_steps for lr in self.target_lrs])
        else:
            self._set_lrs(self.target_lrs)

    def step(self, *args: Any, **kwargs: Any) -> None:
        """One step of the warm-up, or of the wrapped scheduler after it."""
        self.last_epoch += 1
        if self.last_epoch <= self.warmup_steps:
            self._ramp()
            return
        self._schedulers[0].step(*args, **kwargs)
        self._last_lr = group_lrs(self.optimizer)


def warmup(scheduler: LRScheduler, steps: int) -> WarmupLR:
    """Ramp the lr linearly from 0 over ``steps`` steps, then hand over to ``scheduler`` (which
    then runs as if it started at step 0). See WarmupLR for the exact convention."""
    return WarmupLR(scheduler, steps)


# ---------------------------------------------------------------------------------------------
# The lecture's schedules that PyTorch has no class for


class _ClosedForm(LRScheduler):
    """lr = initial_lr * factor(last_epoch): no state beyond the step count, so an outside change
    of group["lr"] is overwritten at the next step (as with LambdaLR)."""

    def _factor(self, t: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[Any]:
        self._warn_outside_step()
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[Any]:
        factor = self._factor(self.last_epoch)
        return [base * factor for base in self.base_lrs]


class InverseTimeLR(_ClosedForm):
    """Inverse-time (1/t) decay: lr_t = initial_lr / (1 + k t), t = last_epoch (the number of
    ``step()`` calls; t = 0 gives initial_lr). k >= 0."""

    def __init__(self, optimizer: Optimizer, k: float, last_epoch: int = -1) -> None:
        self.k = real_arg("InverseTimeLR", "k", k, low=0)
        super().__init__(optimizer, last_epoch)

    def _factor(self, t: int) -> float:
        return 1.0 / (1.0 + self.k * t)


class InverseSqrtLR(_ClosedForm):
    """Inverse square-root decay with an optional linear warm-up (the Transformer's schedule).

    Let n = last_epoch + 1, the 1-based number of the update the lr is used for (n = 1 right after
    construction), so no division by zero can occur:

    - warmup_steps = 0: lr_n = initial_lr / sqrt(n)
    - warmup_steps = W > 0: lr_n = initial_lr * min(n / W, sqrt(W / n)): a linear rise from
      initial_lr / W to the peak initial_lr at n = W, then decay as 1 / sqrt(n), continuous at W.
      W = 1 is the same as W = 0.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0, last_epoch: int = -1) -> None:
        self.warmup_steps = int_arg("InverseSqrtLR", "warmup_steps", warmup_steps, 0)
        super().__init__(optimizer, last_epoch)

    def _factor(self, t: int) -> float:
        n, w = t + 1, self.warmup_steps
        if w == 0:
            return 1.0 / math.sqrt(n)
        return min(n / w, math.sqrt(w) / math.sqrt(n))


def scale_lr_for_batch_size(base_lr: float, base_batch: int, new_batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): a learning rate tuned at batch size
    ``base_batch`` becomes ``base_lr * new_batch / base_batch`` at batch size ``new_batch``
    (pair it with a warm-up when the batch grows a lot)."""
    op = "scale_lr_for_batch_size"
    real_arg(op, "base_lr", base_lr, low=0)
    int_arg(op, "base_batch", base_batch, 1)
    int_arg(op, "new_batch", new_batch, 1)
    return base_lr * new_batch / base_batch
