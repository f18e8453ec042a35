"""SyncBatchNorm: batch normalization with statistics over the batches of all ranks.

In a data-parallel job each rank sees only its own part of the batch. SyncBatchNorm
gathers every rank's per-channel (count, mean, sum of squared deviations), combines them
into the mean and variance of the whole global batch (Chan et al.'s pairwise formula, in
float64), normalizes with those, and in backward allreduces the per-channel sums of dy
and dy * (x - mean), so that N ranks with batch B compute what one process with batch
N * B computes. Outside a job of several ranks (or in eval mode) it is BatchNorm.
"""

from __future__ import annotations

from typing import Any, Callable

from kiln.nn.modules.module import Module
from kiln.nn.modules.norm import _BatchNorm
from kiln.ops.sync_norm import SyncBatchNorm as _SyncBatchNorm
from kiln.tensor import Tensor

__all__ = ["SyncBatchNorm", "register_collectives"]

# Where SyncBatchNorm finds the job: a callable that returns the collectives of a job
# of several ranks (``all_gather``, ``all_reduce``; see kiln.ops.sync_norm) or None.
# kiln.distributed registers its own when imported, so nn never imports it; until
# then there is no job.
_source: Callable[[], Any] | None = None


def register_collectives(source: Callable[[], Any]) -> None:
    """Makes ``source()`` the collectives SyncBatchNorm synchronizes through (None
    outside a job of several ranks, where SyncBatchNorm is BatchNorm)."""
    global _source
    _source = source


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
        collectives = None if _source is None else _source()
        if not self.training or collectives is None:
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
            float(factor), float(self.eps), collectives)

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
