#!/usr/bin/env python
"""kiln against PyTorch, op by op: same inputs, one process, equal thread counts.

    python bench/ops.py [--threads 2] [--repeats 15] [--only conv]

Prints, for each op and shape, the median time of kiln and of PyTorch (timed in
alternating blocks, so a busy machine slows both alike), the rate each reaches (GFLOP/s for
convolution and linear, GB/s of the minimum memory traffic for pooling and batch
norm) and the speed ratio torch_time / kiln_time (above 1: kiln is faster). The
header gives the ceilings measured here and now: OpenBLAS sgemm through kiln on
one thread and on all of them, torch.mm, and a memory copy. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import kiln
import kiln.nn.functional as F
from kiln import kernels

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the table then shows kiln alone
    torch = None


@dataclass
class Row:
    op: str
    shape: str
    kiln_s: float | None
    torch_s: float | None
    work: float  # FLOPs, or bytes when unit == "GB/s"
    unit: str = "GFLOP/s"
    note: str = ""


def block_medians(
    kiln_fn: Callable[[], object] | None, torch_fn: Callable[[], object] | None, repeats: int
) -> tuple[float | None, float | None]:
    """Median seconds of each function, timed in alternating blocks of runs.

    Not call by call: PyTorch's OpenMP workers keep spinning for a while after each
    op, which would slow whatever runs next on a small machine. Each block starts
    after a pause and a warm-up call.
    """
    fns = [f for f in (kiln_fn, torch_fn) if f is not None]
    times: dict[int, list[float]] = {id(f): [] for f in fns}
    rounds = 5
    for _ in range(rounds):
        for f in fns:
            time.sleep(0.05)
            f()
            for _ in range(max(1, repeats // rounds)):
                start = time.perf_counter()
                f()
                times[id(f)].append(time.perf_counter() - start)

    def median(f: Callable[[], object] | None) -> float | None:
        return statistics.median(times[id(f)]) if f is not None else None

    return median(kiln_fn), median(torch_fn)


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def sgemm_ceilings(threads: int, repeats: int) -> list[str]:
    n = 2048
    a, b = rand(n, n), rand(n, n, seed=1)
    flops = 2.0 * n**3
    lines = []
    for t in sorted({1, threads}):
        kiln.set_num_threads(t)
        seconds, _ = block_medians(lambda: kernels.matmul_forward(a, b), None, repeats)
        lines.append(f"OpenBLAS sgemm via kiln, {t} thread(s): "
                     f"{flops / seconds / 1e9:6.1f} GFLOP/s")
    kiln.set_num_threads(threads)
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        _, seconds = block_medians(None, lambda: torch.mm(ta, tb), repeats)
        lines.append(f"torch.mm, {threads} thread(s):               "
                     f"{flops / seconds / 1e9:6.1f} GFLOP/s")
    src, dst = rand(1 << 24), np.empty(1 << 24, np.float32)  # 64 MiB
    seconds, _ = block_medians(lambda: np.copyto(dst, src), None, repeats)
    lines.append(f"memory copy (NumPy, 1 thread):             "
                 f"{2 * src.nbytes / seconds / 1e9:6.1f} GB/s")
    return lines


def conv_rows(n: int, c: int, h: int, k: int, r: int, pad: int, repeats: int) -> list[Row]:
    x, w = rand(n, c, h, h), rand(k, c, r, r, seed=1)
    p = h + 2 * pad - r + 1
    dy = rand(n, k, p, p, seed=2)
    flops = 2.0 * n * k * c * r * r * p * p
    shape = f"({n},{c},{h},{h},{k}) {r}x{r} pad {pad}"
    xk, wk = kiln.tensor(x, requires_grad=True), kiln.tensor(w, requires_grad=True)
    dyk = kiln.tensor(dy)

    def kiln_step() -> None:
        xk.grad = wk.grad = None
        F.conv2d(xk, wk, padding=pad).backward(dyk)

    kiln_fns = [
        lambda: kernels.conv2d_forward(x, w, None, 1, pad),
        lambda: kernels.conv2d_backward_input(dy, w, x.shape, 1, pad),
        lambda: kernels.conv2d_backward_weight(dy, x, w.shape, 1, pad),
        kiln_step,
    ]
    torch_fns: list[Callable[[], object] | None] = [None] * 4
    if torch is not None:
        xt, wt, dyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

        def forward() -> object:
            with torch.no_grad():
                return TF.conv2d(xt, wt, padding=pad)

        def backward(mask: list[bool]) -> Callable[[], object]:
            return lambda: torch.ops.aten.convolution_backward(
                dyt, xt, wt, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        def torch_step() -> None:
            xg.grad = wg.grad = None
            TF.conv2d(xg, wg, padding=pad).backward(dyt)

        torch_fns = [forward, backward([True, False, False]), backward([False, True, False]),
                     torch_step]
    names = ["conv2d forward", "conv2d backward input", "conv2d backward weight",
             "conv2d fwd+bwd (autograd)"]
    work = [flops, flops, flops, 3 * flops]
    return [Row(name, shape, *block_medians(kf, tf, repeats), fl)
            for name, kf, tf, fl in zip(names, kiln_fns, torch_fns, work)]


def missing(name: str) -> str | None:
    return None if hasattr(F, name) else f"kiln.nn.functional.{name} not there yet"


def pool_rows(repeats: int) -> list[Row]:
    n, c, h = 64, 64, 32
    shape = f"({n},{c},{h},{h}) k2 s2"
    note = missing("max_pool2d")
    if note:
        return [Row("max_pool2d", shape, None, None, 0, "GB/s", note)]
    x = rand(n, c, h, h)
    bytes_fwd = x.nbytes * 1.25  # read the input, write a quarter-size output
    xk, xg = kiln.tensor(x, requires_grad=True), None
    g = rand(n, c, h // 2, h // 2, seed=1)
    gk = kiln.tensor(g)

    def kiln_step() -> None:
        xk.grad = None
        F.max_pool2d(xk, 2, 2).backward(gk)

    kf_fwd: Callable[[], object] = lambda: F.max_pool2d(kiln.tensor(x), 2, 2)  # noqa: E731
    tf_fwd = tf_step = None
    if torch is not None:
        xt = torch.from_numpy(x)
        xg, gt = xt.clone().requires_grad_(), torch.from_numpy(g)

        def torch_fwd() -> object:
            with torch.no_grad():
                return TF.max_pool2d(xt, 2, 2)

        def torch_step() -> None:
            xg.grad = None
            TF.max_pool2d(xg, 2, 2).backward(gt)

        tf_fwd, tf_step = torch_fwd, torch_step
    return [
        Row("max_pool2d forward", shape, *block_medians(kf_fwd, tf_fwd, repeats),
            bytes_fwd, "GB/s"),
        # backward: read the gradient and the argmax, write the input gradient
        Row("max_pool2d fwd+bwd", shape, *block_medians(kiln_step, tf_step, repeats),
            bytes_fwd + x.nbytes * 1.25, "GB/s"),
    ]


def batch_norm_rows(repeats: int) -> list[Row]:
    """batch_norm; batch norm -> ReLU and batch norm -> + residual -> ReLU, in kiln unfused
    (the three ops) and fused (F.batch_norm_relu), each against PyTorch's unfused ops."""
    n, c, h = 64, 64, 32
    shape = f"({n},{c},{h},{h}) train"
    note = missing("batch_norm")
    if note:
        return [Row("batch_norm fwd+bwd", shape, None, None, 0, "GB/s", note)]
    x, g, r = rand(n, c, h, h), rand(n, c, h, h, seed=1), rand(n, c, h, h, seed=2)

    def kiln_unfused(*args: Any, residual: Any = None) -> Any:
        y = F.batch_norm(*args)
        return F.relu(y if residual is None else y + residual)

    def torch_unfused(*args: Any, residual: Any = None) -> Any:
        y = TF.batch_norm(*args)
        return TF.relu(y if residual is None else y + residual)

    # (name, kiln op, torch op, with a residual, minimum traffic in units of x's bytes:
    # forward reads x (and the residual) and writes y; backward reads x, dy (and y for
    # the ReLU's mask) and writes dx (and the residual's gradient))
    cases = [
        ("batch_norm fwd+bwd", F.batch_norm, TF.batch_norm, False, 5),
        ("bn+relu unfused fwd+bwd", kiln_unfused, torch_unfused, False, 6),
        ("bn+relu fused fwd+bwd", F.batch_norm_relu, torch_unfused, False, 6),
        ("bn+add+relu unfused fwd+bwd", kiln_unfused, torch_unfused, True, 8),
        ("bn+add+relu fused fwd+bwd", F.batch_norm_relu, torch_unfused, True, 8),
    ]
    rows = []
    for name, kiln_op, torch_op, with_residual, traffic in cases:
        xk, rk = kiln.tensor(x, requires_grad=True), kiln.tensor(r, requires_grad=True)
        wk = kiln.tensor(np.ones(c, np.float32), requires_grad=True)
        bk = kiln.tensor(np.zeros(c, np.float32), requires_grad=True)
        mean_k, var_k = kiln.tensor(np.zeros(c, np.float32)), kiln.tensor(np.ones(c, np.float32))
        gk = kiln.tensor(g)
        extra_k = {"residual": rk} if with_residual else {}

        def kiln_step(op: Any = kiln_op, xk: Any = xk, rk: Any = rk, wk: Any = wk, bk: Any = bk,
                      mean_k: Any = mean_k, var_k: Any = var_k, gk: Any = gk,
                      extra: Any = extra_k) -> None:
            xk.grad = rk.grad = wk.grad = bk.grad = None
            op(xk, mean_k, var_k, wk, bk, True, **extra).backward(gk)

        torch_step = None
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_()
            rt = torch.from_numpy(r).requires_grad_()
            wt, bt = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
            mean_t, var_t, gt = torch.zeros(c), torch.ones(c), torch.from_numpy(g)
            extra_t = {"residual": rt} if with_residual else {}

            def torch_step(op: Any = torch_op, xt: Any = xt, rt: Any = rt, wt: Any = wt,
                           bt: Any = bt, mean_t: Any = mean_t, var_t: Any = var_t,
                           gt: Any = gt, extra: Any = extra_t) -> None:
                xt.grad = rt.grad = wt.grad = bt.grad = None
                op(xt, mean_t, var_t, wt, bt, True, **extra).backward(gt)

        rows.append(Row(name, shape, *block_medians(kiln_step, torch_step, repeats),
                        traffic * x.nbytes, "GB/s"))
    return rows


def linear_rows(repeats: int) -> list[Row]:
    n, i, o = 256, 1024, 1024
    shape = f"({n},{i}) -> {o}"
    note = missing("linear")
    if note:
        return [Row("linear", shape, None, None, 0, note=note)]
    x, w, b = rand(n, i), rand(o, i, seed=1) * 0.03, rand(o, seed=2)
    g = rand(n, o, seed=3)
    xk = kiln.tensor(x, requires_grad=True)
    wk, bk = kiln.tensor(w, requires_grad=True), kiln.tensor(b, requires_grad=True)
    gk = kiln.tensor(g)
    flops = 2.0 * n * i * o

    def kiln_fwd() -> object:
        with kiln.no_grad():
            return F.linear(xk, wk, bk)

    def kiln_step() -> None:
        xk.grad = wk.grad = bk.grad = None
        F.linear(xk, wk, bk).backward(gk)

    torch_fwd = torch_step = None
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        bt = torch.from_numpy(b).requires_grad_()
        gt = torch.from_numpy(g)

        def torch_fwd() -> object:
            with torch.no_grad():
                return TF.linear(xt, wt, bt)

        def torch_step() -> None:
            xt.grad = wt.grad = bt.grad = None
            TF.linear(xt, wt, bt).backward(gt)

    return [
        Row("linear forward", shape, *block_medians(kiln_fwd, torch_fwd, repeats), flops),
        Row("linear fwd+bwd", shape, *block_medians(kiln_step, torch_step, repeats),
            3 * flops),
    ]


def fmt_time(s: float | None) -> str:
    return f"{s * 1e3:9.3f}" if s is not None else "        -"


def fmt_rate(row: Row, s: float | None) -> str:
    return f"{row.work / s / 1e9:8.1f}" if s else "       -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both libraries")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per op (median)")
    parser.add_argument("--only", choices=["conv", "pool", "norm", "linear"],
                        help="run one family")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"kiln {kiln.__version__} vs "
          f"{'PyTorch ' + torch.__version__ if torch is not None else 'no PyTorch'}, "
          f"{args.threads} thread(s) each, median of {args.repeats} runs in alternating blocks "
          f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    for line in sgemm_ceilings(args.threads, max(5, args.repeats // 3)):
        print("  " + line)
    print("speed = torch_time / kiln_time (above 1: kiln is faster)\n")
    print(f"{'op':27s} {'shape (N,C,H,W,K)':26s} {'kiln ms':>9s} {'rate':>8s} "
          f"{'torch ms':>9s} {'rate':>8s} {'unit':8s} {'speed':>6s}")
    families = {
        "conv": lambda: [row for shape in [(64, 64, 32, 64, 3, 1), (128, 32, 32, 32, 3, 1),
                                           (64, 128, 8, 128, 3, 1), (64, 6, 14, 16, 5, 0),
                                           (128, 1, 28, 6, 5, 2)]
                         for row in conv_rows(*shape, args.repeats)],
        "pool": lambda: pool_rows(args.repeats),
        "norm": lambda: batch_norm_rows(args.repeats),
        "linear": lambda: linear_rows(args.repeats),
    }
    for name, family in families.items():
        if args.only and name != args.only:
            continue
        try:
            rows = family()
        except Exception as error:  # another family's op may be unfinished: report, go on
            first_line = str(error).splitlines()[0][:120] if str(error) else ""
            print(f"{name}: skipped, {type(error).__name__}: {first_line}")
            continue
        for row in rows:
            speed = (f"{row.torch_s / row.kiln_s:6.2f}" if row.kiln_s and row.torch_s
                     else "     -")
            line = (f"{row.op:27s} {row.shape:26s} {fmt_time(row.kiln_s)} "
                    f"{fmt_rate(row, row.kiln_s)} {fmt_time(row.torch_s)} "
                    f"{fmt_rate(row, row.torch_s)} {row.unit:8s} {speed}")
            print(line + (f"  ({row.note})" if row.note else ""))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
