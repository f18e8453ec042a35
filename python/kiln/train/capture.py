"""Whole-step capture for the Trainer: a training step's forward, loss, backward and
optimizer update recorded once in a CUDA graph and replayed per batch
(``Trainer(..., capture=True)``).

Small CNNs on a big GPU are bound by launching kernels one by one from Python; a
replay launches the whole recorded step at once. The step:

    steps 1..warmup         eager (the allocator's cache, cuDNN's choices and the
                            optimizer's state settle)
    step warmup+1           the update's real numbers are prepared (CapturedScalars:
                            the learning rate, Adam's bias corrections, in device
                            vectors), the batch is copied into static input buffers,
                            and the forward, the loss, the backward pass and the update
                            are captured (``kiln.cuda.graphs``; the gradients land in
                            static buffers the graph owns), then replayed
    every later step        the numbers prepared and copied to the device, the batch
                            copied into the static buffers, the graph replayed; errors
                            the captured kernels found (a class target out of range)
                            are raised after the replay, with the eager step's text

A batch of another shape or dtype (a short last batch) runs eagerly, with the same
optimizer. When the update's structure changes (a parameter frozen or unfrozen, an
option switched on or off) that step runs eagerly and the next one is captured again.
Capture refuses a model with random layers in training mode (dropout, drop-connect,
stochastic depth): a replay would repeat the recorded random draws. The update needs
an optimizer with an array-math rule (SGD, Adam, AdamW; optim/_array_steps.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln.cuda.graphs import CUDAGraph, graph
from kiln.nn.modules.dropout import Dropout
from kiln.nn.modules.stochastic import DropConnectConv2d, DropConnectLinear, StochasticDepth
from kiln.optim.optimizer import CapturedScalars
from kiln.tensor import Tensor

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
_RANDOM_LAYERS = (Dropout, DropConnectLinear, DropConnectConv2d, StochasticDepth)


def random_layers(model: Any) -> list[str]:
    """Names of the modules of ``model`` that draw random numbers in training mode."""
    return [name or type(model).__name__ for name, m in model.named_modules()
            if isinstance(m, _RANDOM_LAYERS) and m.training and float(getattr(m, "p", 1)) > 0]


class CapturedStep:
    """Runs training steps through one captured CUDA graph (see the module docstring).

    Args:
        net: the model (or its DistributedDataParallel) the step calls.
        loss_fn: ``loss_fn(outputs, targets) -> one-element Tensor``.
        optimizer: its ``step()`` is captured inside the graph.
        eager: the Trainer's eager step ``(images, targets) -> (outputs, loss)``, which
            zeroes, back-propagates and steps itself (warm-up and odd batches).
        checked_loss: checks loss_fn's result, raising the Trainer's error.
        warmup: eager steps before the capture (at least 1).
    """

    def __init__(self, net: Any, loss_fn: Any, optimizer: Any, eager: Step,
                 checked_loss: Callable[[Any], Tensor], warmup: int = 3) -> None:
        self.net, self.loss_fn, self.optimizer = net, loss_fn, optimizer
        self.eager, self.checked_loss = eager, checked_loss
        self.warmup = max(1, int(warmup))
        self.steps = 0
        self.scalars = CapturedScalars(optimizer)
        self.graph: CUDAGraph | None = None
        self.key: tuple[Any, ...] | None = None
        self.static: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # x, y, out, loss
        self.grads: list[tuple[Tensor, Tensor]] = []

    def __call__(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        self.steps += 1
        key = (tuple(images.shape), images.dtype, tuple(targets.shape), targets.dtype)
        if self.steps <= self.warmup or (self.graph is not None and key != self.key):
            return self.eager(images, targets)
        self._restore_grads()
        if self.scalars.prepare() or self.graph is None:
            if self.graph is not None:  # the update's structure changed: this step
                self._drop()            # eagerly, a new capture at the next one
                return self.eager(images, targets)
            self._capture(images, targets, key)
        assert self.graph is not None and self.static is not None
        x, y, out, loss = self.static
        x._data[...] = images._data
        y._data[...] = targets._data
        self.graph.replay()
        self.scalars.advance()
        self._restore_grads()
        return out, loss

    def _restore_grads(self) -> None:
        """The graph's gradient buffers as the parameters' gradients (a callback may
        have set them to None, an eager step replaced them); None for a parameter
        frozen since, so the update's structure shows the change."""
        for p, g in self.grads:
            p.grad = g if p.requires_grad else None

    def _drop(self) -> None:
        assert self.graph is not None
        self.graph.reset()
        self.graph, self.static, self.grads = None, None, []
        self.scalars.forget()

    def _body(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The captured work: the whole training step on the static batch."""
        self.optimizer.zero_grad(set_to_none=True)  # backward writes fresh gradients
        out = self.net(x)
        loss = self.checked_loss(self.loss_fn(out, y))
        loss.backward()
        with self.scalars.capturing():
            self.optimizer.step()
        return out, loss

    def _capture(self, images: Tensor, targets: Tensor, key: tuple[Any, ...]) -> None:
        if not (images.is_cuda and targets.is_cuda):
            raise RuntimeError(f"Trainer: capture=True needs the batches on a CUDA device, "
                               f"got images on {images.device} and targets on "
                               f"{targets.device}")
        model = getattr(self.net, "module", self.net)
        random = random_layers(model)
        if random:
            raise ValueError(f"Trainer: capture=True cannot record a step with random layers "
                             f"in training mode ({', '.join(random)}): each replay would "
                             f"repeat the recorded draws; train with capture=False")
        x, y = images.detach().clone(), targets.detach().clone()
        g = CUDAGraph()
        with graph(g):
            out, loss = self._body(x, y)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.grads = [(p, p.grad) for p in params if p.grad is not None]
        self.static = (x, y, out.detach(), loss.detach())
        self.graph, self.key = g, key
