"""gradcheck_model: finite-difference check of a whole model's parameter gradients."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np

from kiln.autograd import gradcheck
from kiln.nn.modules.module import Module
from kiln.ops.indexing import Scatter
from kiln.recipe._util import keeps_rng, train_without_dropout
from kiln.tensor import Tensor


@keeps_rng
def gradcheck_model(
    model: Module,
    input_shape: Sequence[int],
    max_elements: int | None = 20,
    loss_fn: Callable | None = None,
    seed: int = 0,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Checks the analytical gradient of every parameter of a float64 deep copy of
    ``model`` against central differences (``kiln.autograd.gradcheck``).

    ``input_shape`` is the full input shape, batch included (keep it small, e.g.
    (2, 1, 8, 8)); the input is standard normal from ``seed``. The checked output is
    ``model(x)``, or ``loss_fn(model(x))`` when given. ``max_elements``: number of
    randomly chosen elements checked per parameter (None: all; each costs two forwards).
    Dropout layers are put in eval mode (they are random); everything else stays in
    training mode. Returns True or raises AssertionError naming the parameter.
    """
    op = "gradcheck_model"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"{op}: input_shape must be positive ints, got {input_shape!r}")
    if max_elements is not None and (not isinstance(max_elements, int) or max_elements < 1):
        raise ValueError(f"{op}: max_elements must be a positive int or None, "
                         f"got {max_elements!r}")
    net = train_without_dropout(copy.deepcopy(model).double())
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(shape))
    named = [(n, m, k, p) for n, m in net.named_modules()
             for k, p in m._parameters.items() if p is not None and p.requires_grad]
    if not named:
        raise ValueError(f"{op}: the model has no parameter that requires grad")
    for name, module, key, p in named:
        size = int(np.prod(p.shape))
        count = size if max_elements is None else min(size, max_elements)
        index = np.sort(rng.choice(size, count, replace=False))
        probe = Tensor(np.zeros(count), requires_grad=True)
        base = Tensor(p.detach().numpy().copy())

        def fn(z: Tensor, module: Module = module, key: str = key, base: Tensor = base,
               index: np.ndarray = index) -> Tensor:
            saved = module._parameters[key]
            # The module reads the parameter from its registry: swap in W0 + scatter(z)
            # for this forward so the probe's gradient is W's gradient at ``index``.
            module._parameters[key] = base + Scatter.apply(z, index, base.shape)
            try:
                out = net(x)
            finally:
                module._parameters[key] = saved
            return out if loss_fn is None else loss_fn(out)

        try:
            gradcheck(fn, [probe], eps=eps, atol=atol, rtol=rtol)
        except AssertionError as exc:
            label = f"{name}.{key}" if name else key
            raise AssertionError(f"{op}: parameter {label} {p.shape}: {exc}") from None
    return True
