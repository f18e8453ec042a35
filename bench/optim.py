"""One optimizer step, kiln vs torch.optim (foreach=True), on two parameter sets.

The sets mimic real networks' tensor shapes: ResNet-20 for CIFAR (65 tensors,
0.27 M parameters) and ResNet-50 (161 tensors, 25.6 M parameters), float32.
Each optimizer is timed as a block of kiln steps, then a block of torch steps
(not alternating call by call: torch's OpenMP threads spin after each call and
would steal the second core from kiln's pool), both on 2 threads, after warm-up;
each time is a block's median step, the best of --rounds block pairs.

An update is memory-bound, so the table also gives the bytes each rule must move
per step (every parameter, gradient and state element read once, parameter and
state written once: SGD 3 (5 with momentum), Adagrad 5, RMSprop 5 (+2 centered,
+2 momentum), Adam/AdamW 7 (9 amsgrad) floats per parameter), the bandwidth kiln
achieves, and two ceilings measured next to each rule (on a shared machine the
bandwidth drifts) on a buffer the size of the set's parameters: "copy" (torch,
read n + write n bytes; its stores also pull the destination into cache first,
so an update, which writes only lines it has read, can beat it) and "scale", an
in-place x *= c on kiln's pool (read n + write n, the access pattern of an
update). A last section times clip_grad_norm_.

Run: PYTHONPATH=build-dev/stage python bench/optim.py [--repeat N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import kiln
from kiln import kernels, nn, optim

THREADS = 2

# (name, kwargs, floats moved per parameter per step)
RULES = [
    ("SGD", {"lr": 0.01}, 3),
    ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}, 5),
    ("Adagrad", {"lr": 0.01}, 5),
    ("RMSprop", {"lr": 0.01}, 5),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}, 9),
    ("Adam", {"lr": 1e-3}, 7),
    ("Adam", {"lr": 1e-3, "amsgrad": True}, 9),
    ("AdamW", {"lr": 1e-3, "weight_decay": 0.01}, 7),
]


def _conv_bn(shapes: list[tuple[int, ...]], cout: int, cin: int, k: int) -> None:
    shapes += [(cout, cin, k, k), (cout,), (cout,)]


def resnet20_shapes() -> list[tuple[int, ...]]:
    """ResNet-20 (CIFAR) with 1x1 projection shortcuts where the width changes."""
    shapes: list[tuple[int, ...]] = []
    _conv_bn(shapes, 16, 3, 3)
    cin = 16
    for width in (16, 32, 64):
        for block in range(3):
            _conv_bn(shapes, width, cin, 3)
            _conv_bn(shapes, width, width, 3)
            if block == 0 and cin != width:
                _conv_bn(shapes, width, cin, 1)
            cin = width
    shapes += [(10, 64), (10,)]
    return shapes


def resnet50_shapes() -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    _conv_bn(shapes, 64, 3, 7)
    cin = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            _conv_bn(shapes, width, cin, 1)
            _conv_bn(shapes, width, width, 3)
            _conv_bn(shapes, width * 4, width, 1)
            if block == 0:
                _conv_bn(shapes, width * 4, cin, 1)
            cin = width * 4
    shapes += [(1000, 2048), (1000,)]
    return shapes


def _median_step(step: Callable[[], object], repeat: int) -> float:
    for _ in range(3):
        step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _blocks(kiln_step: Callable[[], object], torch_step: Callable[[], object], repeat: int,
            rounds: int) -> tuple[float, float]:
    """Median step time of a kiln block, then a torch block; the best of `rounds` such
    pairs, so a burst of load from another process does not decide the ratio."""
    k = t = float("inf")
    for _ in range(rounds):
        k = min(k, _median_step(kiln_step, repeat))
        t = min(t, _median_step(torch_step, repeat))
    return k, t


def ceilings(nbytes: int, repeat: int, rounds: int) -> tuple[float, float]:
    """Bytes moved per second by a copy (torch, its threads: read n + write n bytes) and by
    an in-place scale (kiln.kernels.scale_ on the pool: read n + write n, no write-allocate
    traffic, the access pattern of an update) of an nbytes buffer."""
    n = max(nbytes // 4, 1)
    src = torch.rand(n)
    dst = torch.empty(n)
    buf = np.random.rand(n).astype(np.float32)
    scale, copy = _blocks(lambda: kernels.scale_([buf], 1.0), lambda: dst.copy_(src),
                          repeat * 4, rounds)
    return 2 * n * 4 / copy, 2 * n * 4 / scale


def bench_set(label: str, shapes: list[tuple[int, ...]], repeat: int, rounds: int) -> list[dict]:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [(rng.standard_normal(s) * 1e-2).astype(np.float32) for s in shapes]
    count = sum(v.size for v in values)
    print(f"{label}: {len(shapes)} tensors, {count / 1e6:.2f} M parameters "
          f"({count * 4 / 2**20:.1f} MiB per array)")
    rows = []
    for name, kwargs, floats in RULES:
        # Measured next to each rule: on a shared machine the bandwidth drifts.
        copy_bw, rmw_bw = ceilings(count * 4, repeat, rounds)
        kparams = [nn.Parameter(kiln.tensor(v)) for v in values]
        for p, g in zip(kparams, grads):
            p.grad = kiln.tensor(g)
        kopt = getattr(optim, name)(kparams, **kwargs)
        tparams = [torch.tensor(v, requires_grad=True) for v in values]
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt = getattr(torch.optim, name)(tparams, foreach=True, **kwargs)
        k_time, t_time = _blocks(kopt.step, topt.step, repeat, rounds)
        del kopt, kparams, topt, tparams
        moved = floats * 4 * count
        options = ",".join(k if v is True else f"{k}={v}" for k, v in kwargs.items() if k != "lr")
        rows.append({
            "set": label, "rule": f"{name}({options})" if options else name,
            "kiln_ms": k_time * 1e3, "torch_ms": t_time * 1e3, "ratio": t_time / k_time,
            "mb": moved / 1e6, "gbs": moved / k_time / 1e9, "of_copy": moved / k_time / copy_bw,
            "of_rmw": moved / k_time / rmw_bw, "copy": copy_bw / 1e9, "scale": rmw_bw / 1e9,
        })
    return rows


def bench_clip(shapes: list[tuple[int, ...]], label: str, repeat: int) -> None:
    """clip_grad_norm_: kiln's C++ reductions vs a NumPy loop vs torch."""
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    kparams = [kiln.zeros(*s, requires_grad=True) for s in shapes]
    tparams = [torch.zeros(s, requires_grad=True) for s in shapes]
    for k, t, g in zip(kparams, tparams, grads):
        k.grad, t.grad = kiln.tensor(g), torch.tensor(g)

    def numpy_clip() -> None:
        arrays = [p.grad.numpy() for p in kparams]
        total = np.sqrt(sum(float(np.vdot(a, a)) for a in arrays))
        coef = min(1e9 / (total + 1e-6), 1.0)
        for a in arrays:
            a *= coef

    k = _median_step(lambda: kiln.nn.utils.clip_grad_norm_(kparams, 1e9), repeat)
    n = _median_step(numpy_clip, repeat)
    t = _median_step(lambda: torch.nn.utils.clip_grad_norm_(tparams, 1e9), repeat)
    print(f"clip_grad_norm_ {label}: kiln {k * 1e3:.3f} ms, NumPy loop {n * 1e3:.3f} ms, "
          f"torch {t * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=3, help="kiln/torch block pairs")
    args = parser.parse_args()
    kiln.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    rows = bench_set("ResNet-20", resnet20_shapes(), args.repeat * 5, args.rounds)
    rows += bench_set("ResNet-50", resnet50_shapes(), args.repeat, args.rounds)
    print(f"\n{'set':<10} {'rule':<48} {'kiln ms':>8} {'torch ms':>8} {'torch/kiln':>10} "
          f"{'MB/step':>8} {'GB/s':>6} {'copy':>6} {'scale':>6} {'of copy':>7} {'of scale':>8}")
    for r in rows:
        print(f"{r['set']:<10} {r['rule']:<48} {r['kiln_ms']:>8.3f} {r['torch_ms']:>8.3f} "
              f"{r['ratio']:>10.2f} {r['mb']:>8.1f} {r['gbs']:>6.1f} {r['copy']:>6.1f} "
              f"{r['scale']:>6.1f} {r['of_copy']:>7.0%} {r['of_rmw']:>8.0%}")
    print()
    bench_clip(resnet20_shapes(), "ResNet-20", args.repeat * 5)
    bench_clip(resnet50_shapes(), "ResNet-50", args.repeat)


if __name__ == "__main__":
    main()
