#!/usr/bin/env python
"""Per-op overhead, kiln against PyTorch: what a call costs when the work is tiny.

    python bench/overhead.py [--threads 1] [--rounds 7] [--calls 2000]

Each row times a few calls on tensors so small (8 elements; a 1x1x4x4 image) that
the arithmetic is negligible, so the time is the library's fixed cost per op:
argument checks, dispatch, the autograd tape, wrapping outputs, the engine. Rows:

    relu, no grad             relu(x) with x.requires_grad False
    relu, forward+backward    relu(x).sum().backward()   (3 ops on the tape)
    3-op chain backward       ((x * 2 + 1).relu()).sum().backward()   (5 ops)
    tiny conv forward+backward conv2d on (1,1,4,4) with a (1,1,3,3) kernel, summed,
                              backward

kiln and PyTorch run in alternating rounds in one process; the table gives the
median microseconds per row's call over the rounds and the ratio torch / kiln
(above 1: kiln's overhead is lower). A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import kiln
import kiln.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the table then shows kiln alone
    torch = None

Case = Callable[[], object]


def kiln_cases() -> dict[str, Case]:
    x = kiln.tensor(np.linspace(-1, 1, 8, dtype=np.float32))
    xg = kiln.tensor(np.linspace(-1, 1, 8, dtype=np.float32), requires_grad=True)
    image = kiln.tensor(np.ones((1, 1, 4, 4), np.float32), requires_grad=True)
    weight = kiln.tensor(np.ones((1, 1, 3, 3), np.float32), requires_grad=True)
    return {
        "relu, no grad": lambda: F.relu(x),
        "relu, forward+backward": lambda: F.relu(xg).sum().backward(),
        "3-op chain backward": lambda: (xg * 2 + 1).relu().sum().backward(),
        "tiny conv forward+backward": lambda: F.conv2d(image, weight).sum().backward(),
    }


def torch_cases() -> dict[str, Case]:
    x = torch.linspace(-1, 1, 8)
    xg = torch.linspace(-1, 1, 8).requires_grad_()
    image = torch.ones(1, 1, 4, 4, requires_grad=True)
    weight = torch.ones(1, 1, 3, 3, requires_grad=True)
    return {
        "relu, no grad": lambda: TF.relu(x),
        "relu, forward+backward": lambda: TF.relu(xg).sum().backward(),
        "3-op chain backward": lambda: (xg * 2 + 1).relu().sum().backward(),
        "tiny conv forward+backward": lambda: TF.conv2d(image, weight).sum().backward(),
    }


def per_call_us(case: Case, calls: int) -> float:
    case()  # warm-up: first-call caches, lazy imports
    start = time.perf_counter()
    for _ in range(calls):
        case()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="threads of each library")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument("--calls", type=int, default=2000, help="calls per row and round")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    libraries = {"kiln": kiln_cases()}
    if torch is not None:
        torch.set_num_threads(args.threads)
        libraries["torch"] = torch_cases()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for library, cases in libraries.items():
            for row, case in cases.items():
                times.setdefault((library, row), []).append(per_call_us(case, args.calls))
    versions = f"kiln {kiln.__version__}" + (f" vs PyTorch {torch.__version__}" if torch else "")
    print(f"{versions}, {args.threads} thread(s); median of {args.rounds} rounds of "
          f"{args.calls} calls (spread: min-max)")
    print(f"{'row':28} {'kiln us':>18} {'torch us':>18} {'torch/kiln':>10}")
    for row in libraries["kiln"]:
        cells = []
        for library in ("kiln", "torch"):
            runs = times.get((library, row))
            cells.append(f"{statistics.median(runs):7.2f} ({min(runs):.1f}-{max(runs):.1f})"
                         if runs else "-")
        kiln_us = statistics.median(times[("kiln", row)])
        ratio = f"{statistics.median(times[('torch', row)]) / kiln_us:.2f}" if torch else "-"
        print(f"{row:28} {cells[0]:>18} {cells[1]:>18} {ratio:>10}")


if __name__ == "__main__":
    main()
