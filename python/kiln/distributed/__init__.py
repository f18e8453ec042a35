"""kiln.distributed: data-parallel training over the ranks of an MPI job (mpi4py).

    mpiexec -n 4 python train.py          # or: mpiexec -n 4 kiln train ...

    import kiln.distributed as dist
    dist.init()                                        # joins the job
    model = dist.DistributedDataParallel(model)        # same weights on all ranks
    sampler = dist.DistributedSampler(train_set)       # this rank's shard, new each epoch
    loader = kiln.data.DataLoader(train_set, batch_size=64, sampler=sampler)
    # ... the usual loop: backward() returns with gradients averaged over the ranks

``kiln.train.Trainer(..., distributed=True)`` does all of it. See docs/distributed.md.
Needs the ``mpi`` extra (mpi4py and the MPICH wheel); importing this package does not.
"""

from kiln.distributed._world import (
    abort,
    abort_on_error,
    all_gather,
    all_reduce,
    barrier,
    broadcast,
    get_rank,
    get_world_size,
    init,
    is_initialized,
    is_main,
    launched,
    local_rank,
    local_world_size,
    rank,
    world_size,
)
from kiln.distributed.ddp import DistributedDataParallel, broadcast_module
from kiln.distributed.sampler import DistributedEvalSampler, DistributedSampler
from kiln.distributed.training import shard_loader

__all__ = [
    "DistributedDataParallel", "DistributedEvalSampler", "DistributedSampler", "abort",
    "abort_on_error", "all_gather", "all_reduce", "barrier", "broadcast", "broadcast_module",
    "get_rank", "get_world_size", "init", "is_initialized", "is_main", "launched",
    "local_rank", "local_world_size", "rank", "shard_loader", "world_size",
]
