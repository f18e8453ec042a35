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
from collections.abc import Callable, Iterable
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
    """Median seconds of each function (None for a missing one), see `medians`."""
    times = iter(medians([f for f in (kiln_fn, torch_fn) if f is not None], repeats))
    return (next(times) if kiln_fn is not None else None,
            next(times) if torch_fn is not None else None)


def medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function, timed in alternating blocks of runs.

    Not call by call: PyTorch's OpenMP workers keep spinning for a while after each
    op, which would slow whatever runs next on a small machine. Each block starts
    after a pause and a warm-up call.
    """
    times: list[list[float]] = [[] for _ in fns]
    rounds = 5
    for _ in range(rounds):
        for f, spent in zip(fns, times):
            time.sleep(0.05)
            f()
            for _ in range(max(1, repeats // rounds)):
                start = time.perf_counter()
                f()
                spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def sgemm_ceilings(threads: int, repeats: int) -> tuple[list[str], float]:
    """Header lines, and the GFLOP/s of OpenBLAS sgemm via kiln on all the threads."""
    n = 2048
    a, b = rand(n, n), rand(n, n, seed=1)
    flops = 2.0 * n**3
    lines = []
    for t in sorted({1, threads}):
        kiln.set_num_threads(t)
        seconds, _ = block_medians(lambda: kernels.matmul_forward(a, b), None, repeats)
        ceiling = flops / seconds / 1e9
        lines.append(f"OpenBLAS sgemm via kiln, {t} thread(s): {ceiling:6.1f} GFLOP/s")
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
    return lines, ceiling


@dataclass(frozen=True)
class ConvCase:
    """One convolution layer: x (n, c, h, h); conv2d weight (k, c/groups, r, r), or with
    transposed=True conv_transpose2d weight (c, k/groups, r, r)."""

    label: str
    n: int
    c: int
    h: int
    k: int
    r: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    transposed: bool = False


CONV_CASES = [
    ConvCase("LeNet conv1", 64, 1, 28, 6, 5, pad=2),
    ConvCase("LeNet conv2", 64, 6, 14, 16, 5),
    ConvCase("ResNet-20 32x32", 128, 16, 32, 16, 3, pad=1),
    ConvCase("ResNet-20 s2 ->16x16", 128, 16, 32, 32, 3, stride=2, pad=1),
    ConvCase("ResNet-20 16x16", 128, 32, 16, 32, 3, pad=1),
    ConvCase("ResNet-20 s2 ->8x8", 128, 32, 16, 64, 3, stride=2, pad=1),
    ConvCase("ResNet-20 8x8", 128, 64, 8, 64, 3, pad=1),
    ConvCase("late 8x8", 64, 128, 8, 128, 3, pad=1),
    ConvCase("VGG-16 64@32x32", 64, 64, 32, 64, 3, pad=1),
    ConvCase("VGG-16 256@8x8", 64, 256, 8, 256, 3, pad=1),
    ConvCase("VGG-16 512@4x4", 64, 512, 4, 512, 3, pad=1),
    ConvCase("VGG-16 512@2x2", 64, 512, 2, 512, 3, pad=1),
    ConvCase("MobileNet dw 32", 128, 32, 32, 32, 3, pad=1, groups=32),
    ConvCase("MobileNet dw 64 s2", 128, 64, 32, 64, 3, stride=2, pad=1, groups=64),
    ConvCase("MobileNet dw 128", 128, 128, 16, 128, 3, pad=1, groups=128),
    ConvCase("MobileNet dw 128 s2", 128, 128, 16, 128, 3, stride=2, pad=1, groups=128),
    ConvCase("MobileNet dw 256", 128, 256, 8, 256, 3, pad=1, groups=256),
    ConvCase("MobileNet dw 256 s2", 128, 256, 8, 256, 3, stride=2, pad=1, groups=256),
    ConvCase("MobileNet dw 512", 128, 512, 4, 512, 3, pad=1, groups=512),
    ConvCase("MobileNet dw 512 s2", 128, 512, 4, 512, 3, stride=2, pad=1, groups=512),
    ConvCase("MobileNet dw 1024", 128, 1024, 2, 1024, 3, pad=1, groups=1024),
    ConvCase("MobileNet stem 3->32", 128, 3, 32, 32, 3, pad=1),
    ConvCase("MobileNet pw 32->64", 128, 32, 32, 64, 1),
    ConvCase("MobileNet pw 64->128", 128, 64, 16, 128, 1),
    ConvCase("MobileNet pw 128->128", 128, 128, 16, 128, 1),
    ConvCase("MobileNet pw 128->256", 128, 128, 8, 256, 1),
    ConvCase("MobileNet pw 256->256", 128, 256, 8, 256, 1),
    ConvCase("MobileNet pw 256->512", 128, 256, 4, 512, 1),
    ConvCase("MobileNet pw 512->512", 128, 512, 4, 512, 1),
    ConvCase("MobileNet pw 512->1024", 128, 512, 2, 1024, 1),
    ConvCase("MobileNet pw 1024->1024", 128, 1024, 2, 1024, 1),
    ConvCase("DCGAN G 512->256", 64, 512, 4, 256, 4, stride=2, pad=1, transposed=True),
    ConvCase("DCGAN G 256->128", 64, 256, 8, 128, 4, stride=2, pad=1, transposed=True),
    ConvCase("DCGAN G 128->64", 64, 128, 16, 64, 4, stride=2, pad=1, transposed=True),
    ConvCase("DCGAN G 64->3", 64, 64, 32, 3, 4, stride=2, pad=1, transposed=True),
    ConvCase("DCGAN D 3->64", 64, 3, 64, 64, 4, stride=2, pad=1),
    ConvCase("DCGAN D 64->128", 64, 64, 32, 128, 4, stride=2, pad=1),
    ConvCase("DCGAN D 128->256", 64, 128, 16, 256, 4, stride=2, pad=1),
    ConvCase("DCGAN D 256->512", 64, 256, 8, 512, 4, stride=2, pad=1),
    ConvCase("DenseNet 1x1 60->48", 64, 60, 32, 48, 1),
    ConvCase("DenseNet 3x3 48->12 @32", 64, 48, 32, 12, 3, pad=1),
    ConvCase("DenseNet 3x3 48->12 @16", 64, 48, 16, 12, 3, pad=1),
    ConvCase("DenseNet 1x1 132->48", 64, 132, 16, 48, 1),
    ConvCase("ResNeXt 3x3 g8 @32", 64, 32, 32, 32, 3, pad=1, groups=8),
    ConvCase("ResNeXt 3x3 g8 s2", 64, 64, 32, 64, 3, stride=2, pad=1, groups=8),
    ConvCase("ResNeXt 3x3 g8 @8", 64, 128, 8, 128, 3, pad=1, groups=8),
    ConvCase("ResNeXt 1x1 64->32 @32", 64, 64, 32, 32, 1),
    ConvCase("ResNeXt 1x1 32->64 @32", 64, 32, 32, 64, 1),
    ConvCase("ResNeXt 1x1 128->64 @16", 64, 128, 16, 64, 1),
    ConvCase("ResNeXt 1x1 s2 64->128", 64, 64, 32, 128, 1, stride=2),
]


def conv_rows(case: ConvCase, repeats: int) -> list[Row]:
    """Forward, input gradient and weight gradient of one layer, each timed alone.

    PyTorch runs in NCHW and in channels_last (what an experienced user picks on a
    CPU), all three timed in alternating blocks; the row's torch time is the faster
    layout's, and the note gives both.
    """
    n, c, h, k, r, s, pad, groups = (case.n, case.c, case.h, case.k, case.r, case.stride,
                                     case.pad, case.groups)
    p = (h - 1) * s - 2 * pad + r if case.transposed else (h + 2 * pad - r) // s + 1
    w_shape = (c, k // groups, r, r) if case.transposed else (k, c // groups, r, r)
    x, w, dy = rand(n, c, h, h), rand(*w_shape, seed=1), rand(n, k, p, p, seed=2)
    pixels = h * h if case.transposed else p * p  # pixels of the side the weight maps from
    flops = 2.0 * n * (k * c // groups) * r * r * pixels
    shape = (f"({n},{c},{h},{h},{k}) {r}x{r}" + (f" s{s}" if s > 1 else "")
             + (f" g{groups}" if groups > 1 else "") + (" T" if case.transposed else ""))
    if case.transposed:
        kiln_fns = [
            lambda: kernels.conv_transpose2d_forward(x, w, None, s, pad, 0, groups),
            lambda: kernels.conv_transpose2d_backward_input(dy, w, x.shape, s, pad, 0, groups),
            lambda: kernels.conv_transpose2d_backward_weight(dy, x, w.shape, s, pad, 0, groups),
        ]
    else:
        kiln_fns = [
            lambda: kernels.conv2d_forward(x, w, None, s, pad, 1, groups),
            lambda: kernels.conv2d_backward_input(dy, w, x.shape, s, pad, 1, groups),
            lambda: kernels.conv2d_backward_weight(dy, x, w.shape, s, pad, 1, groups),
        ]
    names = ["forward", "backward input", "backward weight"]
    prefix = "conv_transpose2d " if case.transposed else "conv2d "
    if torch is None:
        return [Row(prefix + name, shape, block_medians(kf, None, repeats)[0], None, flops,
                    note=case.label) for name, kf in zip(names, kiln_fns)]

    def torch_fns(layout: torch.memory_format) -> list[Callable[[], object]]:
        xt, wt, dyt = (torch.from_numpy(a).contiguous(memory_format=layout) for a in (x, w, dy))

        def forward() -> object:
            with torch.no_grad():
                if case.transposed:
                    return TF.conv_transpose2d(xt, wt, None, s, pad, 0, groups)
                return TF.conv2d(xt, wt, None, s, pad, 1, groups)

        def backward(mask: list[bool]) -> Callable[[], object]:
            return lambda: torch.ops.aten.convolution_backward(
                dyt, xt, wt, None, [s, s], [pad, pad], [1, 1], case.transposed, [0, 0], groups,
                mask)

        return [forward, backward([True, False, False]), backward([False, True, False])]

    layouts = [("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)]
    per_layout = [torch_fns(layout) for _, layout in layouts]
    rows = []
    for i, name in enumerate(names):
        kiln_s, *torch_s = medians([kiln_fns[i]] + [fns[i] for fns in per_layout], repeats)
        best = min(range(len(layouts)), key=lambda j: torch_s[j])
        times = ", ".join(f"{layout} {t * 1e3:.3f}" for (layout, _), t in zip(layouts, torch_s))
        rows.append(Row(prefix + name, shape, kiln_s, torch_s[best], flops,
                        note=f"{case.label}; torch ms {times}"))
    return rows


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
    parser.add_argument("--case", default="",
                        help="conv layers whose label contains this text (e.g. DCGAN)")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"kiln {kiln.__version__} vs "
          f"{'PyTorch ' + torch.__version__ if torch is not None else 'no PyTorch'}, "
          f"{args.threads} thread(s) each, median of {args.repeats} runs in alternating blocks "
          f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')})")
    lines, ceiling = sgemm_ceilings(args.threads, max(5, args.repeats // 3))
    for line in lines:
        print("  " + line)
    print("speed = torch_time / kiln_time (above 1: kiln is faster); %peak = kiln's "
          "GFLOP/s as a share of the sgemm line above\n")
    print(f"{'op':27s} {'shape (N,C,H,W,K)':26s} {'kiln ms':>9s} {'rate':>8s} {'%peak':>5s} "
          f"{'torch ms':>9s} {'rate':>8s} {'unit':8s} {'speed':>6s}")
    families: dict[str, Callable[[], Iterable[Row]]] = {
        "conv": lambda: (row for case in CONV_CASES if args.case in case.label
                         for row in conv_rows(case, args.repeats)),
        "pool": lambda: pool_rows(args.repeats),
        "norm": lambda: batch_norm_rows(args.repeats),
        "linear": lambda: linear_rows(args.repeats),
    }
    for name, family in families.items():
        if args.only and name != args.only:
            continue
        try:
            for row in family():
                speed = (f"{row.torch_s / row.kiln_s:6.2f}" if row.kiln_s and row.torch_s
                         else "     -")
                peak = (f"{row.work / row.kiln_s / 1e9 / ceiling:5.0%}"
                        if row.kiln_s and row.unit == "GFLOP/s" else "    -")
                line = (f"{row.op:27s} {row.shape:26s} {fmt_time(row.kiln_s)} "
                        f"{fmt_rate(row, row.kiln_s)} {peak} {fmt_time(row.torch_s)} "
                        f"{fmt_rate(row, row.torch_s)} {row.unit:8s} {speed}")
                print(line + (f"  ({row.note})" if row.note else ""))
                sys.stdout.flush()
        except Exception as error:  # another family's op may be unfinished: report, go on
            first_line = str(error).splitlines()[0][:120] if str(error) else ""
            print(f"{name}: skipped, {type(error).__name__}: {first_line}")


if __name__ == "__main__":
    main()
