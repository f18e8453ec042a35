"""SyncBatchNorm: batch normalization with statistics over the batches of all ranks.

In a data-parallel job each rank sees only its own part of the batch. SyncBatchNorm
gathers every rank's per-channel (count, mean, sum of squared deviations), combines them
into the mean and variance of the whole global batch (Chan et al.'s pairwise formula, in
float64), normalizes with those, and in backward allreduces the per-channel sums of dy
and dy * (x - mean), so that N ranks with batch B compute what one process with batch
N * B computes. Outside a job of several ranks (or in eval mode) it is BatchNorm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln import _C
from kiln.autograd import Function
from kiln.nn.modules.module import Module
from kiln.nn.modules.norm import _BatchNorm
from kiln.tensor import Tensor

__all__ = ["SyncBatchNorm"]


def _world() -> Any:
    from kiln.distributed import _world as W

    return W._world


class _SyncBatchNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None,
                factor: float, eps: float) -> np.ndarray:
        from kiln.distributed import _world as W

        x = np.ascontiguousarray(x)
        c = x.shape[1]
        rows = x.reshape(x.shape[0], c, -1)
        count = rows.shape[0] * rows.shape[2]
        stats = np.zeros(1 + 2 * c)
        stats[0] = count
        if count:
            mean = rows.mean(axis=(0, 2), dtype=np.float64)
            centered = rows - mean.astype(x.dtype)[None, :, None]
            stats[1:1 + c] = mean
            stats[1 + c:] = np.einsum("ncs,ncs->c", centered, centered, dtype=np.float64)
        every = W.all_gather(stats, "the SyncBatchNorm statistics")
        counts = every[:, 0]
        total = counts.sum()
        if total <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel when "
                             f"training, got input of shape {x.shape} and {int(total)} values "
                             f"per channel over all ranks")
        means, m2s = every[:, 1:1 + c], every[:, 1 + c:]
        mean = (counts[:, None] * means).sum(0) / total
        m2 = (m2s + counts[:, None] * (means - mean) ** 2).sum(0)
        var = m2 / total
        if running_mean is not None and running_var is not None:
            running_mean[...] = (1 - factor) * running_mean + factor * mean
            running_var[...] = (1 - factor) * running_var + factor * m2 / (total - 1)
        weight = None if weight is None else np.ascontiguousarray(weight)
        bias = None if bias is None else np.ascontiguousarray(bias)
        y, save_mean, save_invstd = _C.batch_norm_forward(
            x, mean.astype(x.dtype), var.astype(x.dtype), weight, bias, False, 0.0, eps)
        ctx.save_for_backward(x, weight, save_mean, save_invstd)
        ctx.total = total
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        from kiln.distributed import _world as W

        x, weight, mean, invstd = ctx.saved_tensors
        # Eval-mode kernel: dx0 = dy * w * invstd and this rank's sums of dy and
        # dy * xhat; the terms through the global statistics use the sums of all ranks.
        dx, dweight, dbias = _C.batch_norm_backward(np.ascontiguousarray(grad), x, weight,
                                                    mean, invstd, False)
        needs = ctx.needs_input_grad
        if needs[0]:
            c = x.shape[1]
            sums = np.concatenate([dbias.astype(np.float64),
                                   dweight.astype(np.float64) / invstd.astype(np.float64)])
            W.all_reduce(sums, what="the SyncBatchNorm gradient sums")
            scale = invstd.astype(np.float64) * (1.0 if weight is None else weight)
            b = -scale * invstd.astype(np.float64) ** 2 * sums[c:] / ctx.total
            k = -scale * sums[:c] / ctx.total
            shape = (1, c) + (1,) * (x.ndim - 2)
            dx += (x - mean.reshape(shape)) * b.astype(x.dtype).reshape(shape)
            dx += k.astype(x.dtype).reshape(shape)
        return (dx if needs[0] else None, dweight if needs[1] else None,
                dbias if needs[2] else None, None, None, None, None)


class SyncBatchNorm(_BatchNorm):
    """Batch normalization of input (N, C, *) (at least 2D) over the global batch of all
    ranks: per channel C, the mean and variance of every rank's N * prod(*) values.

    Same arguments, parameters (weight, bias (C,)) and buffers (running_mean,
    running_var (C,), num_batches_tracked) as BatchNorm2d; ``process_group`` must be
    None (the whole job). Every rank must call forward and backward the same number of
    times (they communicate). In eval mode, or when kiln.distributed is not initialized
    or the job has one rank, it computes exactly what BatchNorm does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)
        if process_group is not None:
            raise ValueError("SyncBatchNorm: process_group must be None (the whole job)")
        self.process_group = None

    _expected_ndims = tuple(range(2, 65))

    def _check_input_dim(self, input: Any) -> None:  # noqa: A002
        if isinstance(input, Tensor) and input.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected at least 2D input (got {input.ndim}D "
                             f"input of shape {tuple(input.shape)})")
        super()._check_input_dim(input)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        world = _world()
        if not self.training or world is None or world.size == 1:
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.detach().numpy()[...] += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        running = self.track_running_stats and self.running_mean is not None
        return _SyncBatchNorm.apply(
            input, self.weight, self.bias,
            self.running_mean.detach().numpy() if running else None,
            self.running_var.detach().numpy() if running else None,
            float(factor), float(self.eps))

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """Returns ``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm that
        shares its parameters and buffers (a BatchNorm ``module`` itself is returned
        converted; other modules are changed in place and returned)."""
        if process_group is not None:
            raise ValueError("SyncBatchNorm.convert_sync_batchnorm: process_group must be None")
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            dtype = next((t.dtype for t in (module.weight, module.running_mean)
                          if t is not None), None)
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, dtype=dtype,
                            bias=module.bias is not None)
            if module.affine:
                converted.weight = module.weight
                if module.bias is not None:
                    converted.bias = module.bias
            if module.track_running_stats:
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
            converted.train(module.training)
            return converted
        for name, child in list(module.named_children()):
            new = cls.convert_sync_batchnorm(child)
            if new is not child:
                setattr(module, name, new)
        return module
