"""The optimizer updates as array math, for a device whose backend has no fused kernel.

Each function has the signature and the in-place effect of its C++ kernel in kiln._C
(csrc/cpu/optim.h states the rules, torch.optim's): lists of parameter, gradient and
state arrays of the device's array module ``xp`` (CuPy on a GPU). One update is a few
elementwise array ops per parameter instead of one launch per group, so it is slower,
never different: tests compare it with the C++ kernels. Only the rules named in
``STEPS`` have one; another optimizer on such a device raises NotImplementedError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def sgd_step(xp: Any, params: Sequence[Any], grads: Sequence[Any],
             momentum_buffers: Sequence[Any], lr: float, momentum: float, dampening: float,
             weight_decay: float, nesterov: bool, maximize: bool) -> list[Any]:
    """torch.optim.SGD's rule; returns the momentum buffers (a buffer of None is made
    from the step's gradient; an empty list without momentum)."""
    buffers = []
    for i, (p, g) in enumerate(zip(params, grads)):
        d = -g if maximize else g
        if weight_decay != 0:
            d = d + weight_decay * p
        if momentum != 0:
            buf = momentum_buffers[i]
            if buf is None:
                buf = xp.array(d, copy=True)
            else:
                buf *= momentum
                buf += (1 - dampening) * d
            buffers.append(buf)
            d = d + momentum * buf if nesterov else buf
        p -= lr * d
    return buffers


def adam_step(xp: Any, params: Sequence[Any], grads: Sequence[Any], exp_avgs: Sequence[Any],
              exp_avg_sqs: Sequence[Any], max_exp_avg_sqs: Sequence[Any],
              state_steps: Sequence[Any], lr: float, beta1: float, beta2: float, eps: float,
              weight_decay: float, amsgrad: bool, maximize: bool,
              decoupled_weight_decay: bool) -> None:
    """torch.optim.Adam's rule (AdamW's with decoupled_weight_decay); state_steps are
    one-element arrays, incremented first."""
    for i, (p, g) in enumerate(zip(params, grads)):
        state_steps[i] += 1
        step = float(state_steps[i].reshape(-1)[0])
        g = -g if maximize else g
        if weight_decay != 0:
            if decoupled_weight_decay:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        m, v = exp_avgs[i], exp_avg_sqs[i]
        m += (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = lr / (1 - beta1 ** step)
        bc2_sqrt = math.sqrt(1 - beta2 ** step)
        if amsgrad:
            xp.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        p -= step_size * m / (xp.sqrt(v) / bc2_sqrt + eps)


STEPS: dict[str, Callable[..., Any]] = {"sgd_step": sgd_step, "adam_step": adam_step}
