"""Data-parallel training of ResNet-20 with kiln.distributed: measured here, projected on paper.

Measured (each rank one kernel thread, synthetic CIFAR-shaped batches, SGD momentum 0.9):

- images/s of DistributedDataParallel(resnet20) training steps at 1 and 2 ranks on this
  machine, with --batch images per rank (weak scaling: the global batch grows with N);
- the time share of communication: the time backward spends at its end waiting for
  the gradient allreduces that did not finish while the layers below were computed,
  over the step time; and the cost of one blocking allreduce of all gradients;
- allreduce bandwidth: MPI_Allreduce of float32 buffers of 1 MiB .. 64 MiB, as "bus
  bandwidth" (NCCL-tests' convention): 2 (N - 1) / N * bytes / time, the bytes each
  rank sends (and receives) in a ring allreduce, per second.

On paper: a ring allreduce moves 2 (N - 1) / N * G bytes per rank (G: gradient bytes) in
2 (N - 1) steps; with link bandwidth B and per-step latency a,
T_comm(N) = 2 (N - 1) / N * G / B + 2 (N - 1) * a. With the compute time T of one step at
one rank's batch, the scaling efficiency is T / (T + T_comm) when no communication
overlaps backward, and T / max(T, T_comm) when all of it does (the two bounds).

Run (the script starts the mpiexec jobs itself; keep the machine otherwise idle):
    PYTHONPATH=build-dev/stage python bench/distributed.py [--batch 32] [--steps 8]
One job size by hand: mpiexec -n 2 python bench/distributed.py --worker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _worker(args: argparse.Namespace) -> None:
    import kiln
    import kiln.distributed as dist
    from kiln.models import resnet20
    from kiln.nn import functional as F

    dist.init()
    kiln.set_num_threads(args.threads)
    rank, size = dist.rank(), dist.world_size()
    kiln.manual_seed(0)
    model = resnet20(num_classes=10)
    ddp = dist.DistributedDataParallel(model)
    opt = kiln.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(rank)
    x = kiln.tensor(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    y = kiln.tensor(rng.integers(0, 10, args.batch))

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(ddp(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    dist.barrier()
    times, waits = [], []
    for _ in range(args.steps):
        ddp.comm_seconds = 0.0
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        waits.append(ddp.comm_seconds)
    comm = float(np.median(waits))
    # Each rank's own work per step (step minus waiting): the spread between ranks is
    # time the faster rank spends waiting for the slower one inside the "comm" wait.
    work = dist.all_gather(np.array([float(np.median(np.subtract(times, waits)))]))[:, 0]
    grad_bytes = sum(p.numel() * 4 for p in model.parameters())
    # One blocking allreduce of all the gradients: the cost if nothing overlapped.
    flat = np.ones(grad_bytes // 4, np.float32)
    blocking = _time_allreduce(dist, flat, 20) if size > 1 else 0.0
    bandwidth = {}
    if size > 1:
        for mib in (1, 4, 16, 64):
            buf = np.ones(mib * (1 << 20) // 4, np.float32)
            seconds = _time_allreduce(dist, buf, max(3, 64 // mib))
            bandwidth[mib] = 2 * (size - 1) / size * buf.nbytes / seconds
    step_time = float(np.median(times))
    slowest = np.array([step_time])
    dist.all_reduce(slowest, "max")
    if rank == 0:
        print(json.dumps({
            "ranks": size, "batch": args.batch, "steps": args.steps,
            "step_s": float(slowest[0]), "images_per_s": size * args.batch / float(slowest[0]),
            "comm_wait_s": comm, "blocking_allreduce_s": blocking, "grad_bytes": grad_bytes,
            "buckets": len(ddp.buckets), "bus_bandwidth": bandwidth,
            "work_s": work.tolist()}), flush=True)


def _time_allreduce(dist: object, buf: np.ndarray, repeats: int) -> float:
    dist.all_reduce(buf)  # warm-up
    dist.barrier()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dist.all_reduce(buf)
        times.append(time.perf_counter() - start)
    median = np.array([float(np.median(times))])
    dist.all_reduce(median, "max")
    return float(median[0])


def _run(ranks: int, args: argparse.Namespace) -> dict:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks),
               sys.executable, __file__, "--worker", "--batch", str(args.batch), "--steps",
               str(args.steps), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"bench/distributed.py: mpiexec -n {ranks} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _projection(step_s: float, grad_bytes: int, bandwidth_gbit: float, latency_s: float,
                nodes: int) -> tuple[float, float, float]:
    """(T_comm, efficiency without overlap, efficiency with full overlap)."""
    comm = 2 * (nodes - 1) / nodes * grad_bytes / (bandwidth_gbit * 1e9 / 8) \
        + 2 * (nodes - 1) * latency_s
    return comm, step_s / (step_s + comm), step_s / max(step_s, comm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="images per rank per step")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per job")
    parser.add_argument("--threads", type=int, default=1, help="kernel threads per rank")
    parser.add_argument("--node-speedup", type=float, default=16.0, help="the projection "
                        "also assumes a node this many times faster than one rank here "
                        "(a many-core node: less compute to hide the communication behind)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    one, two = _run(1, args), _run(2, args)
    print(f"ResNet-20, batch {args.batch} per rank, {args.threads} thread(s) per rank, "
          f"{args.steps} timed steps; gradients {one['grad_bytes'] / 2**20:.2f} MiB in "
          f"{one['buckets']} buckets")
    print("ranks  step ms  images/s  speed-up  comm wait ms (share)  blocking allreduce ms  "
          "work ms per rank")
    for r in (one, two):
        print(f"{r['ranks']:>5}  {r['step_s'] * 1e3:7.1f}  {r['images_per_s']:8.1f}  "
              f"{r['images_per_s'] / one['images_per_s']:8.2f}  "
              f"{r['comm_wait_s'] * 1e3:8.2f} ({r['comm_wait_s'] / r['step_s']:6.2%})  "
              f"{r['blocking_allreduce_s'] * 1e3:12.2f}           "
              + " ".join(f"{w * 1e3:.0f}" for w in r["work_s"]))
    print("allreduce bus bandwidth at 2 ranks (2(N-1)/N * bytes / time): " + ", ".join(
        f"{mib} MiB {bw / 1e9:.2f} GB/s" for mib, bw in two["bus_bandwidth"].items()))
    print(f"\non paper: ring allreduce of {one['grad_bytes'] / 2**20:.2f} MiB per step")
    print("compute ms  link        latency  nodes  T_comm ms  efficiency (no overlap .. "
          "full overlap)")
    for step in (one["step_s"], one["step_s"] / args.node_speedup):
        for gbit, latency in ((10, 50e-6), (100, 5e-6)):
            for nodes in (8, 64):
                comm, low, high = _projection(step, one["grad_bytes"], gbit, latency, nodes)
                print(f"{step * 1e3:10.1f}  {gbit:>4} Gb/s  {latency * 1e6:5.0f} us  "
                      f"{nodes:>5}  {comm * 1e3:9.2f}  {low:.1%} .. {high:.1%}")


if __name__ == "__main__":
    main()
