"""Synchronized batch norm on raw arrays: batch norm over the global batch of all ranks.

Each rank sends its per-channel (count, mean, sum of squared deviations); they are
combined into the mean and variance of the whole global batch (Chan et al.'s pairwise
formula, in float64) and the batch-norm kernels normalize with those. Backward
allreduces the per-channel sums of dy and dy * (x - mean), so that N ranks with batch
B compute what one process with batch N * B computes.

The communication is the caller's: ``collectives`` is any object with
``all_gather(array, what)`` (every rank's host array, stacked) and
``all_reduce(array, what=...)`` (a sum over the ranks, in place), as kiln.distributed
provides. Kernels come from ``ctx.backend``; the statistics cross to the host for the
collectives and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.autograd import Function


class SyncBatchNorm(Function):
    """sync_batch_norm(x, weight, bias, running_mean, running_var, factor, eps,
    collectives): training-mode batch norm of x (N, C, *) with the statistics of all
    ranks; the running statistics (C,), when given, are updated in place with weight
    ``factor`` (the unbiased variance of the global batch)."""

    @staticmethod
    def forward(ctx: Any, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
                factor: float, eps: float, collectives: Any) -> Any:
        backend = ctx.backend
        c = x.shape[1]
        rows = x.reshape(x.shape[0], c, -1)
        count = rows.shape[0] * rows.shape[2]
        stats = np.zeros(1 + 2 * c)
        stats[0] = count
        if count:
            mean = rows.mean(axis=(0, 2), dtype=np.float64)
            centered = rows - mean.astype(x.dtype)[None, :, None]
            stats[1:1 + c] = backend.to_host(mean)
            stats[1 + c:] = backend.to_host(
                backend.xp.einsum("ncs,ncs->c", centered, centered, dtype=np.float64))
        every = collectives.all_gather(stats, "the SyncBatchNorm statistics")
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
            running_mean[...] = (1 - factor) * running_mean + factor * backend.from_host(mean)
            running_var[...] = ((1 - factor) * running_var
                                + factor * backend.from_host(m2 / (total - 1)))
        y, save_mean, save_invstd = backend.batch_norm_forward(
            x, backend.from_host(mean.astype(x.dtype)), backend.from_host(var.astype(x.dtype)),
            weight, bias, False, 0.0, eps)
        ctx.save_for_backward(x, weight, save_mean, save_invstd)
        ctx.total = total
        ctx.collectives = collectives
        return y

    @staticmethod
    def backward(ctx: Any, grad: Any) -> tuple[Any, ...]:
        backend = ctx.backend
        x, weight, mean, invstd = ctx.saved_tensors
        # Eval-mode kernel: dx0 = dy * w * invstd and this rank's sums of dy and
        # dy * xhat; the terms through the global statistics use the sums of all ranks.
        dx, dweight, dbias = backend.batch_norm_backward(grad, x,
                                                         weight, mean, invstd, False)
        needs = ctx.needs_input_grad
        if needs[0]:
            c = x.shape[1]
            invstd64 = backend.to_host(invstd).astype(np.float64)
            sums = np.concatenate([backend.to_host(dbias).astype(np.float64),
                                   backend.to_host(dweight).astype(np.float64) / invstd64])
            ctx.collectives.all_reduce(sums, what="the SyncBatchNorm gradient sums")
            scale = invstd64 * (1.0 if weight is None else backend.to_host(weight))
            b = -scale * invstd64 ** 2 * sums[c:] / ctx.total
            k = -scale * sums[:c] / ctx.total
            shape = (1, c) + (1,) * (x.ndim - 2)
            dx += (x - mean.reshape(shape)) * backend.from_host(b.astype(x.dtype)).reshape(shape)
            dx += backend.from_host(k.astype(x.dtype)).reshape(shape)
        return (dx if needs[0] else None, dweight if needs[1] else None,
                dbias if needs[2] else None, None, None, None, None, None)
