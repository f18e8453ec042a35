#!/usr/bin/env python
"""Where one training step's time goes, by op family: a profile of kiln alone.

    python bench/step_profile.py [--model resnet20] [--batch 128] [--threads 2] [--steps 10]
                                 [--ceilings]

The step is bench/train.py's: zero the gradients, forward, cross-entropy, backward, SGD
(momentum 0.9, weight decay 5e-4). Every kernel of the CPU backend is wrapped by a timer
that sorts its calls into families by name (conv forward / backward-input /
backward-weight, batch norm, activation, pooling, linear, loss, optimizer, ...). Per
family the table gives ms per step, the work (GFLOP for convolution and linear: 2 x the
multiply-adds; GB for the others: the bytes of the kernel's array arguments and results,
the least traffic it can cause), the rate, and the % of the step; beside the mean, the
median over the steps (on a shared machine a step that another process slowed moves the
mean, hardly the median). The rest of each phase (forward, backward, optimizer) is time
outside kernels: Python (modules, facades, Function.apply, the engine) and NumPy array
math (ops written in ``xp``, gradient accumulation). Below the table: minor page faults
per step (each is a 4 KiB page the kernel hands out again after a freed buffer went back
by munmap), the bytes of arrays the kernels return per step, and NumPy's peak of newly
allocated bytes within a step (tracemalloc, one separate step); the spread of step times
(10-90% range) and, per step, page faults, context switches and GC passes, for the steps
slower than 1.3x the median against the rest (what the slow steps had more of).
--ceilings adds the machine's sgemm and memory-copy rates (bench/ops.py's). Models:
kiln.models' names (resnet20, vgg_cifar, lenet5, ...) and bench/networks.py's zoo
(resnet18, mobilenet, vgg16). A profile, never a test; the timer costs about a
microsecond per kernel call. (Not bench/profile.py: bench/ is the first entry of sys.path
for its scripts, and that name would hide the standard library's ``profile``, which torch
imports.)
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import kiln
from kiln import backends, models, nn, optim
from kiln.ops import activation as activation_ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
import networks  # noqa: E402  (bench/networks.py: the zoo networks, written once)

# family of a kernel: the first of these prefixes its name starts with (else "other")
FAMILIES = (
    ("conv2d_forward", "conv forward"),
    ("conv2d_backward_input", "conv backward-input"),
    ("conv2d_backward_weight", "conv backward-weight"),
    ("conv2d_backward_bias", "conv backward-bias"),
    ("conv_transpose2d", "conv transpose"),
    ("batch_norm_relu", "batch norm + relu (fused)"),
    ("batch_norm", "batch norm"),
    ("group_norm", "group norm"),
    ("layer_norm", "layer norm"),
    ("max_pool", "pooling"),
    ("avg_pool", "pooling"),
    ("adaptive", "pooling"),
    ("linear", "linear"),
    ("matmul", "linear"),
    ("cross_entropy", "loss"),
    ("nll", "loss"),
    ("log_softmax", "loss"),
    ("sgd", "optimizer"),
    ("adam", "optimizer"),
    ("dropout", "dropout"),
)
# the zoo's classifiers (the GAN's two networks need their own loop)
ZOO = {name: build for name, build in networks.BUILDERS.items() if not name.startswith("dcgan")}
PHASES = ("forward", "backward", "optimizer")
RUSAGE_EVENTS = (("minor page faults", "ru_minflt"),
                 ("voluntary context switches", "ru_nvcsw"),
                 ("involuntary context switches", "ru_nivcsw"))


def family(name: str, pointwise: set[str]) -> str:
    for prefix, fam in FAMILIES:
        if name.startswith(prefix):
            return fam
    if name.rsplit("_", 1)[0] in pointwise:
        return "activation"
    return "other"


def _arrays(value: Any) -> list[np.ndarray]:
    """The NumPy arrays in a kernel's argument or result (nested in lists or tuples)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return []


def _flops(name: str, args: tuple, result: Any) -> float:
    """2 x the multiply-adds of a convolution or linear kernel call; 0 for the others."""
    if name in ("conv2d_forward", "conv2d_backward_input"):
        out = result if name == "conv2d_forward" else args[0]  # the output or its gradient
        weight = args[1]
        return 2.0 * out.size * weight[0].size
    if name == "conv2d_backward_weight":
        grad_out, grad_w = args[0], result
        return 2.0 * grad_out.size * grad_w[0].size
    if name == "linear_forward":
        x, w = args[0], args[1]
        return 2.0 * x.size * w.shape[0]
    if name == "linear_backward":
        grad, x = args[0], args[1]
        return 4.0 * grad.size * x.shape[-1]  # input and weight gradients
    return 0.0


class KernelTimer:
    """Wraps every kernel of the CPU backend; sums time, work and calls per (phase, family)."""

    def __init__(self) -> None:
        self.phase = "forward"
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.flops: dict[tuple[str, str], float] = defaultdict(float)
        self.bytes: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        # seconds in each timed step, per (phase, family): the medians beside the means
        self.per_step: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.result_bytes = 0.0
        backend = backends.get("cpu")
        pointwise = set(backend.pointwise_ops())
        for name, kernel in list(vars(backend).items()):
            if callable(kernel) and not name.startswith("_") and name != "xp":
                setattr(backend, name, self._wrap(name, family(name, pointwise), kernel))
        activation_ops._KERNELS.clear()  # cached kernel lookups: look them up again

    def _wrap(self, name: str, fam: str, kernel: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = kernel(*args, **kwargs)
            elapsed = time.perf_counter() - start
            key = (self.phase, fam)
            self.seconds[key] += elapsed
            self.calls[key] += 1
            out_bytes = sum(a.nbytes for a in _arrays(result))
            self.result_bytes += out_bytes
            self.bytes[key] += out_bytes + sum(a.nbytes for a in _arrays(args))
            self.flops[key] += _flops(name, args, result)
            return result
        return timed

    def reset(self) -> None:
        for table in (self.seconds, self.flops, self.bytes, self.calls, self.per_step):
            table.clear()
        self.result_bytes = 0.0


def build(name: str) -> nn.Module:
    return ZOO[name](kiln) if name in ZOO else models.get_model(name)


def input_shape(name: str, batch: int) -> tuple[int, ...]:
    return (batch, 1, 28, 28) if name.startswith("lenet") else (batch, 3, 32, 32)


def profile(model_name: str, batch: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    x = kiln.tensor(rng.standard_normal(input_shape(model_name, batch)).astype(np.float32))
    y = kiln.tensor(rng.integers(0, 10, batch))
    model = build(model_name)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    timer = KernelTimer()
    phase_s: dict[str, list[float]] = defaultdict(list)
    # per step: minor page faults, context switches (voluntary: a thread slept, e.g. a
    # pool worker or the caller waiting on one; involuntary: preempted), GC passes
    events: dict[str, list[int]] = defaultdict(list)
    gc_passes = [0]

    def count_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            gc_passes[0] += 1
    gc.callbacks.append(count_gc)

    def step(record: bool) -> None:
        marks = [time.perf_counter()]
        timer.phase = "forward"
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        marks.append(time.perf_counter())
        timer.phase = "backward"
        loss.backward()
        marks.append(time.perf_counter())
        timer.phase = "optimizer"
        opt.step()
        marks.append(time.perf_counter())
        if record:
            for phase, t0, t1 in zip(PHASES, marks, marks[1:]):
                phase_s[phase].append(t1 - t0)

    for _ in range(3):  # warm-up: caches, the allocator's arenas, lazy lookups
        step(False)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    step(False)
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    step(False)
    timer.reset()
    for _ in range(steps):
        before, gc_before = resource.getrusage(resource.RUSAGE_SELF), gc_passes[0]
        seconds_before = dict(timer.seconds)
        step(True)
        after = resource.getrusage(resource.RUSAGE_SELF)
        for key, total in timer.seconds.items():
            timer.per_step[key].append(total - seconds_before.get(key, 0.0))
        for key, field in RUSAGE_EVENTS:
            events[key].append(getattr(after, field) - getattr(before, field))
        events["GC passes"].append(gc_passes[0] - gc_before)
    report(model_name, batch, steps, timer, phase_s, events, peak)


def report(model_name: str, batch: int, steps: int, timer: KernelTimer,
           phase_s: dict[str, list[float]], events: dict[str, list[int]], peak: int) -> None:
    # means over the steps, so that a phase's kernels and the rest add up to the phase
    phase_ms = {p: 1e3 * statistics.fmean(phase_s[p]) for p in PHASES}
    total = sum(phase_ms.values())
    step_times = [sum(ts) * 1e3 for ts in zip(*(phase_s[p] for p in PHASES))]
    print(f"{model_name}, batch {batch}, {kiln.get_num_threads()} threads: step "
          f"{total:.1f} ms (mean of {steps}; median {statistics.median(step_times):.1f}, "
          f"min {min(step_times):.1f}, max {max(step_times):.1f})")
    header = (f"{'phase':<10} {'family':<27} {'ms':>7} {'med ms':>7} {'calls':>6} {'GFLOP':>7} "
              f"{'GB':>7} {'rate':>13} {'% step':>7}")
    print(header)
    print("-" * len(header))

    def per_step(key: tuple[str, str]) -> list[float]:
        """The key's ms in each timed step (0 in the steps before its first call)."""
        times = timer.per_step[key]
        return [0.0] * (steps - len(times)) + [1e3 * t for t in times]

    by_family: dict[str, float] = defaultdict(float)
    by_family_steps: dict[str, list[float]] = defaultdict(lambda: [0.0] * steps)
    for phase in PHASES:
        keys = sorted((k for k in timer.seconds if k[0] == phase),
                      key=lambda k: -timer.seconds[k])
        inside = 0.0
        inside_steps = [0.0] * steps
        for key in keys:
            ms = 1e3 * timer.seconds[key] / steps
            inside += ms
            by_family[key[1]] += ms
            key_steps = per_step(key)
            inside_steps = [a + b for a, b in zip(inside_steps, key_steps)]
            by_family_steps[key[1]] = [a + b for a, b in zip(by_family_steps[key[1]], key_steps)]
            gflop = timer.flops[key] / steps / 1e9
            gb = timer.bytes[key] / steps / 1e9
            rate = (f"{gflop / ms * 1e3:7.1f} GFLOP/s" if gflop else
                    f"{gb / ms * 1e3:7.1f} GB/s  ")
            print(f"{phase:<10} {key[1]:<27} {ms:7.2f} {statistics.median(key_steps):7.2f} "
                  f"{timer.calls[key] // steps:6d} {gflop:7.3f} {gb:7.3f} {rate:>13} "
                  f"{100 * ms / total:6.1f}%")
        outside = phase_ms[phase] - inside
        name = f"outside kernels ({phase})"
        by_family[name] += outside
        by_family_steps[name] = [1e3 * t - k for t, k in zip(phase_s[phase], inside_steps)]
        print(f"{phase:<10} {'outside kernels':<27} {outside:7.2f} "
              f"{statistics.median(by_family_steps[name]):7.2f} {'':>6} {'':>7} {'':>7} "
              f"{'':>13} {100 * outside / total:6.1f}%")
    print("-" * len(header))
    print("by family, largest first (mean ms, % of the mean step; median ms over the steps, "
          "which a step slowed by another process moves less):")
    for fam, ms in sorted(by_family.items(), key=lambda kv: -kv[1]):
        print(f"  {fam:<34} {ms:7.2f} ms {100 * ms / total:6.1f}%   median "
              f"{statistics.median(by_family_steps[fam]):7.2f} ms")
    faults = events["minor page faults"]
    print(f"minor page faults per step: median {statistics.median(faults):.0f} "
          f"(min {min(faults)}, max {max(faults)}) = "
          f"{statistics.median(faults) * resource.getpagesize() / 2**20:.1f} MiB touched anew")
    print(f"kernel results per step: {timer.result_bytes / steps / 2**20:.1f} MiB; "
          f"NumPy's peak of new bytes within a step (tracemalloc): {peak / 2**20:.1f} MiB")
    spread(step_times, events)


def spread(step_times: list[float], events: dict[str, list[int]]) -> None:
    """The steps' spread and what the slow ones (over 1.3x the median) had more of."""
    median = statistics.median(step_times)
    if len(step_times) >= 2:
        q = statistics.quantiles(step_times, n=10)
        print(f"step-time spread: 10-90% range {(q[-1] - q[0]) / median:.0%} of the median")
    slow = [t > 1.3 * median for t in step_times]
    print(f"per step, median (mean over the {sum(slow)} steps slower than 1.3x the median "
          f"/ over the rest):")
    for key, counts in events.items():
        means = [[c for c, s in zip(counts, slow) if s == want] for want in (True, False)]
        slow_mean, rest_mean = (f"{statistics.fmean(m):.1f}" if m else "-" for m in means)
        print(f"  {key:<28} {statistics.median(counts):6.0f}  ({slow_mean} / {rest_mean})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ceilings", action="store_true",
                        help="also measure sgemm and memory-copy rates (bench/ops.py's)")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    if args.ceilings:
        import ops  # bench/ops.py, beside this file; imports torch when installed

        print("\n".join(ops.sgemm_ceilings(args.threads, 5)))
    profile(args.model, args.batch, args.steps)


if __name__ == "__main__":
    main()
