"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2``.

    mpiexec -n 2 python tests/distributed_worker.py SCENARIO OUT_DIR

Each rank writes what the test checks into OUT_DIR (rank<r>.npz / .json).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np

import kiln
import kiln.distributed as dist
from kiln import nn
from kiln.nn import functional as F


def small_net(batch_norm: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)]
    return nn.Sequential(*layers)


def data(steps: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The same global batches on every rank: (steps, batch, 3, 8, 8) and labels."""
    rng = np.random.default_rng(123)
    images = rng.standard_normal((steps, batch, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 5, (steps, batch)).astype(np.int64)
    return images, labels


def train(model: nn.Module, net: nn.Module, images: np.ndarray, labels: np.ndarray,
          momentum: float = 0.9) -> list[float]:
    opt = kiln.optim.SGD(model.parameters(), lr=0.05, momentum=momentum)
    losses = []
    for x, y in zip(images, labels):
        opt.zero_grad()
        loss = F.cross_entropy(net(kiln.tensor(x)), kiln.tensor(y))
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def state(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}


def scenario_equivalence(out: str, sync_bn: bool) -> None:
    """2 ranks x batch B against 1 process x batch 2B (rank 0 computes both)."""
    steps, per_rank = 4, 6
    r, n = dist.rank(), dist.world_size()
    images, labels = data(steps, per_rank * n)
    kiln.manual_seed(1000 + r)  # different inits: DDP must broadcast rank 0's
    model = small_net(batch_norm=sync_bn)
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    kiln.manual_seed(0)
    if r == 0:
        reference = small_net(batch_norm=sync_bn)
        model.load_state_dict(reference.state_dict())
    # Record, at every bucket launch, how many gradients backward had yet to produce.
    launches: list[int] = []
    launch = dist.DistributedDataParallel._launch_ready

    def logged(self: dist.DistributedDataParallel) -> None:
        before = self._started
        launch(self)
        if self._started > before:
            launches.append(sum(b.pending for b in self._buckets))

    dist.DistributedDataParallel._launch_ready = logged  # type: ignore[method-assign]
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.001)  # several buckets
    shard = slice(r * per_rank, (r + 1) * per_rank)
    losses = train(model, ddp, images[:, shard], labels[:, shard])
    np.savez(os.path.join(out, f"rank{r}.npz"), **state(model))
    info = {"buckets": len(ddp.buckets), "losses": losses, "launches": launches}
    if sync_bn:
        info["uneven_error"] = uneven_sync_bn_error(r)
    if r == 0:
        single = train(reference, reference, images, labels)  # one process, batch 2B
        np.savez(os.path.join(out, "single.npz"), **state(reference))
        info["single_losses"] = single
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(info, f)


def uneven_sync_bn_error(r: int) -> float:
    """SyncBatchNorm over shards of 5 and 3 samples against BatchNorm2d over all 8: the
    largest difference in output, input gradient, summed weight gradient, running stats."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((8, 3, 4, 4)) * 2 + 1).astype(np.float32)
    g = rng.standard_normal((8, 3, 4, 4)).astype(np.float32)
    mine = slice(0, 5) if r == 0 else slice(5, 8)
    sync, reference = nn.SyncBatchNorm(3), nn.BatchNorm2d(3)
    xs = kiln.tensor(x[mine], requires_grad=True)
    ys = sync(xs)
    (ys * kiln.tensor(g[mine])).sum().backward()
    xr = kiln.tensor(x, requires_grad=True)
    yr = reference(xr)
    (yr * kiln.tensor(g)).sum().backward()
    weight_grad = dist.all_reduce(np.array(sync.weight.grad.numpy(), copy=True))
    return max(float(np.abs(ys.detach().numpy() - yr.detach().numpy()[mine]).max()),
               float(np.abs(xs.grad.numpy() - xr.grad.numpy()[mine]).max()),
               float(np.abs(weight_grad - reference.weight.grad.numpy()).max()),
               float(np.abs(sync.running_var.numpy() - reference.running_var.numpy()).max()),
               float(np.abs(sync.running_mean.numpy() - reference.running_mean.numpy()).max()))


def scenario_identical(out: str) -> None:
    """Different data per rank, dropout-free BN net: the replicas must stay bit-equal."""
    r = dist.rank()
    kiln.manual_seed(r)
    model = small_net(batch_norm=True)
    ddp = dist.DistributedDataParallel(model)
    if r == 0:
        np.save(os.path.join(out, "init.npy"), model[0].weight.detach().numpy())
    images, labels = data(6, 8)
    train(model, ddp, images + r, labels)  # each rank its own batches
    np.savez(os.path.join(out, f"rank{r}.npz"), **state(model))


def scenario_trainer(out: str) -> None:
    """Trainer(distributed=True): sharded loaders, checkpoints on rank 0, exact eval."""
    from kiln.data import DataLoader, TensorDataset
    from kiln.train import ModelCheckpoint, Trainer

    r = dist.rank()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((45, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 45).astype(np.int64)
    x_val = rng.standard_normal((13, 3, 8, 8)).astype(np.float32)  # 13: uneven shards
    y_val = rng.integers(0, 5, 13).astype(np.int64)
    kiln.manual_seed(3)
    model = nn.SyncBatchNorm.convert_sync_batchnorm(small_net(batch_norm=True))
    opt = kiln.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    path = os.path.join(out, "ckpt-{epoch}.safetensors")
    trainer = Trainer(model, F.cross_entropy, opt, callbacks=[ModelCheckpoint(
        path, monitor="loss", save_best_only=False)], distributed=True)
    train_loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=5)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=4)
    history = trainer.fit(train_loader, val_loader, epochs=2)
    # The validation numbers must be those of the whole validation set in one process.
    model.eval()
    with kiln.no_grad():
        logits = model(kiln.tensor(x_val))
        loss = float(F.cross_entropy(logits, kiln.tensor(y_val)).item())
    accuracy = float((logits.numpy().argmax(1) == y_val).mean())
    rows = history.as_rows()
    info = {"val_loss": rows[-1]["val_loss"], "val_accuracy": rows[-1]["val_accuracy"],
            "loss": [row["loss"] for row in rows], "full_loss": loss,
            "full_accuracy": accuracy, "callbacks": [type(c).__name__ for c in
                                                     trainer.callbacks]}
    np.savez(os.path.join(out, f"rank{r}.npz"), **state(model))
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(info, f)


class TwoHeads(nn.Module):
    """A trunk and three heads; forward(x, head) uses one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 4)
        self.heads = nn.ModuleList([nn.Linear(4, 3) for _ in range(3)])

    def forward(self, x: kiln.Tensor, head: int) -> kiln.Tensor:
        return self.heads[head](self.trunk(x).relu())


def scenario_options(out: str) -> None:
    """no_sync accumulation, find_unused_parameters, and the error without it."""
    r, n = dist.rank(), dist.world_size()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 2, 3, 4)).astype(np.float32)  # rank, micro-batch, rows
    y = rng.integers(0, 3, (n, 2, 3))
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    reference = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    reference.load_state_dict(model.state_dict())
    ddp = dist.DistributedDataParallel(model)
    info: dict[str, object] = {}
    # no_sync: rank r accumulates micro-batch 0 locally; micro-batch 1 reduces the sums.
    with ddp.no_sync():
        F.cross_entropy(ddp(kiln.tensor(x[r, 0])), kiln.tensor(y[r, 0])).backward()
    F.cross_entropy(ddp(kiln.tensor(x[r, 1])), kiln.tensor(y[r, 1])).backward()
    for q in range(n):  # what that must give: the sum over micro-batches, mean over ranks
        for m in range(2):
            loss = F.cross_entropy(reference(kiln.tensor(x[q, m])), kiln.tensor(y[q, m]))
            (loss / n).backward()
    info["no_sync_error"] = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                                for p, q in zip(model.parameters(), reference.parameters()))
    # Parameters no backward reaches leave their buckets unfinished: the next forward
    # says so.
    kiln.manual_seed(0)
    model = TwoHeads()
    ddp = dist.DistributedDataParallel(model)
    F.cross_entropy(ddp(kiln.tensor(x[r, 0]), 0), kiln.tensor(y[r, 0])).backward()
    try:
        ddp(kiln.tensor(x[r, 0]), 0)
    except RuntimeError as error:
        info["unused_error"] = str(error)
    # find_unused_parameters: rank r uses head r; head 2 is used by nobody.
    kiln.manual_seed(0)
    model = TwoHeads()
    ddp = dist.DistributedDataParallel(model, find_unused_parameters=True)
    for _ in range(2):
        model.zero_grad()
        F.cross_entropy(ddp(kiln.tensor(x[r, 0]), r), kiln.tensor(y[r, 0])).backward()
    info["head_grads"] = [None if h.weight.grad is None else h.weight.grad.numpy().tolist()
                          for h in model.heads]
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(info, f)


def scenario_stop(out: str) -> None:
    """A callback on rank 1 alone stops training at step 2: every rank stops there."""
    from kiln.data import DataLoader, TensorDataset
    from kiln.train import Callback, Trainer

    r = dist.rank()

    class StopOnRank1(Callback):
        def on_batch_end(self, step: int, logs: dict) -> None:
            if r == 1 and step == 2:
                self.trainer.stop_training = True

    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 40).astype(np.int64)
    kiln.manual_seed(0)
    model = small_net(batch_norm=False)
    trainer = Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[StopOnRank1()], distributed=True)
    trainer.fit(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=1), epochs=3)
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump({"epoch": trainer.epoch, "steps": len(trainer.history.steps["loss"])}, f)


def scenario_failure(out: str, how: str) -> None:
    """Rank 1 dies (SIGKILL), raises, or hangs at step 3 of a DDP loop."""
    r = dist.rank()
    kiln.manual_seed(0)
    model = small_net(batch_norm=False)
    ddp = dist.DistributedDataParallel(model)
    opt = kiln.optim.SGD(model.parameters(), lr=0.01)
    images, labels = data(1, 8)
    for step in range(1000):
        if r == 1 and step == 3:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif how == "raise":
                raise RuntimeError("a deliberate failure at step 3")
            else:
                time.sleep(3600)
        opt.zero_grad()
        F.cross_entropy(ddp(kiln.tensor(images[0])), kiln.tensor(labels[0])).backward()
        opt.step()
    print("finished without noticing the failure", flush=True)


def main() -> None:
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init()
    with open(os.path.join(out, f"threads{dist.rank()}.txt"), "w") as f:
        f.write(str(kiln.get_num_threads()))  # what init chose: cores / local ranks
    kiln.set_num_threads(1)
    if scenario in ("equivalence", "syncbn"):
        scenario_equivalence(out, sync_bn=scenario == "syncbn")
    elif scenario == "identical":
        scenario_identical(out)
    elif scenario == "trainer":
        scenario_trainer(out)
    elif scenario == "options":
        scenario_options(out)
    elif scenario == "stop":
        scenario_stop(out)
    else:
        scenario_failure(out, scenario)


if __name__ == "__main__":
    main()
