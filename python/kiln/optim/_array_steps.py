"""The optimizer updates as array math, for a device whose backend has no fused kernel,
and for a training step captured in a CUDA graph.

Each rule is an ``ArrayStep`` of two halves, so that its host arithmetic and its array
math are written once for both uses:

    prepare(params, grads, *args) -> (scalars, structure)
        the host side: the step's real numbers as a flat list (the learning rate, the
        bias corrections of each parameter's next step, ...) and its structure (which
        terms exist: momentum, weight decay, flags); changes nothing
    advance(params, grads, *args)
        the host state the step moves on (Adam's step counters), as the kernel would
    apply(xp, params, grads, *args, scalars, structure) -> the kernel's result
        the array math; ``scalars`` are Python floats (an eager step) or 0-d device
        arrays in the parameters' dtype that a captured step reads at each replay

``step(xp, ...)`` (``sgd_step``, ``adam_step``) is prepare, advance, then apply with
host floats:
the signature and in-place effect of the C++ kernel of that name in kiln._C
(csrc/cpu/optim.h states the rules, torch.optim's): lists of parameter, gradient and
state arrays of the device's array module ``xp``. One update is a few elementwise array
ops per parameter instead of one launch per group, so it is slower, never different:
tests compare it with the C++ kernels. Only the rules named in ``STEPS`` have one;
another optimizer on such a device raises NotImplementedError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class ArrayStep(NamedTuple):
    """One update rule as host preparation plus array math (see the module docstring);
    ``idle(*args)`` is what the rule returns when only prepared (its state as it is)."""

    prepare: Callable[..., tuple[list[float], tuple[Any, ...]]]
    advance: Callable[..., None]
    apply: Callable[..., Any]
    idle: Callable[..., Any]

    def __call__(self, xp: Any, params: Sequence[Any], grads: Sequence[Any], *args: Any) -> Any:
        scalars, structure = self.prepare(params, grads, *args)
        self.advance(params, grads, *args)
        return self.apply(xp, params, grads, *args, scalars=scalars, structure=structure)


def _nothing(*args: Any) -> None:
    """The advance of a rule without host state."""


def _sgd_prepare(params: Sequence[Any], grads: Sequence[Any], momentum_buffers: Sequence[Any],
                 lr: float, momentum: float, dampening: float, weight_decay: float,
                 nesterov: bool, maximize: bool) -> tuple[list[float], tuple[Any, ...]]:
    return ([lr, momentum, 1 - dampening, weight_decay],
            (momentum != 0, weight_decay != 0, bool(nesterov), bool(maximize)))


def _sgd_apply(xp: Any, params: Sequence[Any], grads: Sequence[Any],
               momentum_buffers: Sequence[Any], *args: Any, scalars: Sequence[Any],
               structure: tuple[Any, ...]) -> list[Any]:
    """torch.optim.SGD's rule; returns the momentum buffers (a buffer of None is made
    from the step's gradient; an empty list without momentum)."""
    lr, momentum, undamped, weight_decay = scalars
    has_momentum, has_decay, nesterov, maximize = structure
    buffers = []
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if has_decay:
            d = d + weight_decay * p
        if has_momentum:
            buf = momentum_buffers[i]
            if buf is None:
                buf = xp.array(d, copy=True)
            else:
                buf *= momentum
                buf += undamped * d
            buffers.append(buf)
            d = d + momentum * buf if nesterov else buf
        p -= lr * d
    return buffers


def _adam_prepare(params: Sequence[Any], grads: Sequence[Any], exp_avgs: Sequence[Any],
                  exp_avg_sqs: Sequence[Any], max_exp_avg_sqs: Sequence[Any],
                  state_steps: Sequence[Any], lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float, amsgrad: bool, maximize: bool,
                  decoupled_weight_decay: bool) -> tuple[list[float], tuple[Any, ...]]:
    """The scalars are the decay factor, 1 - beta1, beta2, 1 - beta2, eps, then per
    parameter its step size and sqrt of the second bias correction at its next step
    (the step counters are one-element arrays)."""
    decay = 1 - lr * weight_decay if decoupled_weight_decay else weight_decay
    scalars = [decay, 1 - beta1, beta2, 1 - beta2, eps]
    for s in state_steps:
        step = float(s.reshape(-1)[0]) + 1
        scalars += [lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step)]
    return scalars, (weight_decay != 0, bool(decoupled_weight_decay), bool(amsgrad),
                     bool(maximize))


def _adam_advance(params: Sequence[Any], grads: Sequence[Any], exp_avgs: Sequence[Any],
                  exp_avg_sqs: Sequence[Any], max_exp_avg_sqs: Sequence[Any],
                  state_steps: Sequence[Any], *args: Any) -> None:
    for s in state_steps:
        s += 1


def _adam_apply(xp: Any, params: Sequence[Any], grads: Sequence[Any], exp_avgs: Sequence[Any],
                exp_avg_sqs: Sequence[Any], max_exp_avg_sqs: Sequence[Any], *args: Any,
                scalars: Sequence[Any], structure: tuple[Any, ...]) -> None:
    """torch.optim.Adam's rule (AdamW's with decoupled weight decay)."""
    decay, keep1, beta2, keep2, eps = scalars[:5]
    has_decay, decoupled, amsgrad, maximize = structure
    for i, (p, g) in enumerate(zip(params, grads)):
        step_size, bc2_sqrt = scalars[5 + 2 * i], scalars[6 + 2 * i]
        g = -g if maximize else g
        if has_decay:
            if decoupled:
                p *= decay
            else:
                g = g + decay * p
        m, v = exp_avgs[i], exp_avg_sqs[i]
        m += keep1 * (g - m)
        v *= beta2
        v += keep2 * g * g
        if amsgrad:
            xp.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        p -= step_size * m / (xp.sqrt(v) / bc2_sqrt + eps)


sgd_step = ArrayStep(_sgd_prepare, _nothing, _sgd_apply, lambda buffers, *args: list(buffers))
adam_step = ArrayStep(_adam_prepare, _adam_advance, _adam_apply, lambda *args: None)

STEPS: dict[str, ArrayStep] = {"sgd_step": sgd_step, "adam_step": adam_step}
