"""Training steps on one GPU: kiln eager, kiln captured (one CUDA graph per step), PyTorch
eager with cuDNN in NCHW and in channels_last; same GPU, same process.

Networks (bench/train.py's, the PyTorch twins starting from kiln's weights): lenet5 at
batch 64 on 1x28x28, vgg_cifar (the CIFAR CNN) and resnet20 at batch 128 on 3x32x32. A
step: zero the gradients, forward, cross-entropy, backward, SGD (momentum 0.9, weight
decay 5e-4). kiln captured: kiln.train.capture.CapturedStep, the Trainer's capture=True
path (forward, loss, backward and the SGD update replayed from one graph, the update's
learning rate and momentum read from device scalars written before each replay).
PyTorch runs with torch.backends.cudnn.benchmark = True (the expert's setting).

The four variants run in alternating blocks (--rounds times): each block warms up, then
times --steps steps and synchronizes; a cell is the median per-step time over the
blocks (± the range over the median). speed = the faster PyTorch layout's ms / kiln's ms
(above 1: kiln is faster), for kiln eager and kiln captured. Before timing, the script
checks that kiln and PyTorch compute the same eval-mode logits on the GPU.

Exits with a message and status 0 where no CUDA device (or no kiln CUDA backend) is.

Run: PYTHONPATH=build-gpu/stage python3 bench/gpu.py [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import kiln
from kiln.backends import cuda as cuda_backend
from kiln.train.capture import CapturedStep

NAMES = ("lenet5", "vgg_cifar", "resnet20")
VARIANTS = ("kiln eager", "kiln captured", "torch NCHW", "torch channels_last")


def kiln_steps(build: Callable[[], Any], model: Any, x: Any, y: Any
               ) -> dict[str, Callable[[], Any]]:
    """kiln's eager step on ``model`` and the captured step on a copy of it (``build()``
    with the same weights)."""

    def make(net: Any) -> tuple[Any, Any, Callable[[Any, Any], tuple[Any, Any]]]:
        opt = kiln.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        loss_fn = kiln.nn.CrossEntropyLoss()

        def eager(images: Any, targets: Any) -> tuple[Any, Any]:
            opt.zero_grad()
            out = net(images)
            loss = loss_fn(out, targets)
            loss.backward()
            opt.step()
            return out, loss

        return opt, loss_fn, eager

    _, _, eager = make(model)
    clone = build().cuda()
    clone.load_state_dict(model.state_dict())
    opt, loss_fn, clone_eager = make(clone)
    captured = CapturedStep(clone, loss_fn, opt, clone_eager, lambda loss: loss, warmup=2)
    return {"kiln eager": lambda: eager(x, y), "kiln captured": lambda: captured(x, y)}


def torch_steps(torch: Any, twin: Any, x: np.ndarray, y: np.ndarray
                ) -> dict[str, Callable[[], Any]]:
    """PyTorch's eager step in NCHW and in channels_last (separate copies)."""
    steps = {}
    for layout, fmt in (("torch NCHW", torch.contiguous_format),
                        ("torch channels_last", torch.channels_last)):
        net = copy.deepcopy(twin).cuda().to(memory_format=fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        loss_fn = torch.nn.CrossEntropyLoss()
        tx = torch.from_numpy(x).cuda().contiguous(memory_format=fmt)
        ty = torch.from_numpy(y).cuda()

        def step(net: Any = net, opt: Any = opt, loss_fn: Any = loss_fn, tx: Any = tx,
                 ty: Any = ty) -> None:
            opt.zero_grad()
            loss_fn(net(tx), ty).backward()
            opt.step()

        steps[layout] = step
    return steps


def time_block(step: Callable[[], Any], sync: Callable[[], None], steps: int) -> float:
    """ms per step over ``steps`` steps, after two warm-up steps, synchronized."""
    for _ in range(2):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) * 1e3 / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", nargs="*", choices=NAMES)
    args = parser.parse_args(argv)
    if not kiln.cuda.is_available():
        print(f"bench/gpu.py: no CUDA device for kiln ({cuda_backend.UNAVAILABLE_REASON}); "
              "nothing to measure")
        return 0
    import torch  # noqa: PLC0415  (needed only with a GPU)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import train as cpu_bench  # noqa: PLC0415  (bench/train.py: networks and twins)

    torch.backends.cudnn.benchmark = True
    print(f"GPU: {kiln.cuda.get_device_name()}; torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}; {args.rounds} rounds x {args.steps} steps")
    rows = []
    for name, build, twin_of, shape in cpu_bench.NETWORKS:
        if name not in (args.only or NAMES):
            continue
        kiln.manual_seed(0)
        model = build()
        twin = twin_of(model)
        cpu_bench.copy_weights(model, twin)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0]).astype(np.int64)
        model.cuda()
        model.eval()
        twin_gpu = twin.cuda().eval()
        with kiln.no_grad(), torch.no_grad():
            ours = model(kiln.tensor(x, device="cuda")).cpu().numpy()
            theirs = twin_gpu(torch.from_numpy(x).cuda()).cpu().numpy()
        model.train()
        twin.train()
        diff = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-6))
        kx, ky = kiln.tensor(x, device="cuda"), kiln.tensor(y, device="cuda")
        steps = {**kiln_steps(build, model, kx, ky), **torch_steps(torch, twin.cpu(), x, y)}
        syncs = {v: (kiln.cuda.synchronize if v.startswith("kiln") else torch.cuda.synchronize)
                 for v in VARIANTS}
        for v in VARIANTS:  # the capture, cuDNN's algorithm search: before any timing
            for _ in range(4):
                steps[v]()
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for v in VARIANTS:
                times[v].append(time_block(steps[v], syncs[v], args.steps))
        rows.append((name, shape[0], diff, times))
    print(f"\n{'network':<10} {'batch':>5} {'logits':>8} "
          + " ".join(f"{v:>21}" for v in VARIANTS) + f" {'speed eager':>12} {'captured':>9}")
    for name, batch, diff, times in rows:
        med = {v: statistics.median(t) for v, t in times.items()}
        cells = " ".join(f"{med[v]:>9.3f} ms ±{_spread(times[v]):>5.1%}" for v in VARIANTS)
        best = min(med["torch NCHW"], med["torch channels_last"])
        print(f"{name:<10} {batch:>5} {diff:>8.1e} {cells} {best / med['kiln eager']:>11.2f}x "
              f"{best / med['kiln captured']:>8.2f}x")
    print("\nspeed: the faster PyTorch layout's median ms / kiln's (above 1: kiln is faster)")
    return 0


def _spread(times: list[float]) -> float:
    med = statistics.median(times)
    return (max(times) - min(times)) / med if med else 0.0


if __name__ == "__main__":
    sys.exit(main())
