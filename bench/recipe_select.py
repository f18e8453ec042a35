"""Chooses `kiln train`'s default recipe on data it never trains or selects on.

The 5,000 embedded MNIST digits are split once (stratified, seed 2026) into 4,000
that a recipe may use as it likes (`kiln train --data npz:...` splits them again
into its own training and validation parts and picks its best epoch on the
validation part) and 1,000 held-out digits that only this script looks at. Each
recipe runs for several seeds as its own `kiln train` process; the table gives
the held-out accuracy of `best.safetensors` (mean and spread over the seeds) and
the whole process's wall time.

    python bench/recipe_select.py                       # the recipes below, seeds 0-2
    python bench/recipe_select.py --seeds 0 1 2 3 4 --recipes default fast

The official MNIST test set is not used: the recipe that ships is judged on it
afterwards, once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RECIPES: dict[str, list[str]] = {
    "default": [],
    "val10": ["--val-split", "0.1"],
    "b128-e20": ["--batch-size", "128", "--epochs", "20", "--lr", "4e-3"],
    "crop-only": ["--augment", "crop"],
    "wd": ["--lr", "8e-3", "--weight-decay", "2e-3"],
    "wd-b128": ["--batch-size", "128", "--lr", "8e-3", "--weight-decay", "2e-3"],
    "wd-b128-val10": ["--batch-size", "128", "--lr", "8e-3", "--weight-decay", "2e-3",
                      "--val-split", "0.1"],
}


def held_out_split(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    from kiln.data import mnist_sample, stratified_split

    sample = mnist_sample()
    images, labels = (t.numpy() for t in sample.tensors)
    use, held = (part.indices for part in stratified_split(sample, (0.8, 0.2), seed=2026))
    path = folder / "use.npz"
    np.savez(path, images=images[use], labels=labels[use])
    return path, images[held], labels[held]


def held_out_accuracy(checkpoint: Path, images: np.ndarray, labels: np.ndarray) -> float:
    import kiln
    from kiln import cli
    from kiln.checkpoint import load_checkpoint

    config = cli._read_checkpoint_extra(str(checkpoint))
    model = cli._build_model(config)
    load_checkpoint(checkpoint, model)
    model.eval()
    with kiln.no_grad():
        logits = model(kiln.from_numpy(cli._normalized(config, images)))
    return float((logits.numpy().argmax(1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, images, labels = held_out_split(folder)
        print(f"{'recipe':<12} {'held-out accuracy (mean +- std)':<34} {'per seed':<40} "
              f"{'wall s (mean)':>13}")
        for name in args.recipes:
            accuracies, walls = [], []
            for seed in args.seeds:
                out = folder / f"{name}-{seed}"
                argv = [sys.executable, "-m", "kiln.cli", "train", "--data", f"npz:{data}",
                        "--quiet", "--seed", str(seed), "--threads", str(args.threads),
                        "--out", str(out), "--name", "run", *RECIPES[name]]
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ)
                walls.append(time.perf_counter() - start)
                accuracies.append(held_out_accuracy(out / "run" / "best.safetensors",
                                                    images, labels))
            acc = np.array(accuracies)
            print(f"{name:<12} {acc.mean():.4f} +- {acc.std(ddof=1) if len(acc) > 1 else 0:.4f}"
                  f"{'':<18} {json.dumps([round(a, 4) for a in accuracies]):<40} "
                  f"{np.mean(walls):>13.1f}", flush=True)


if __name__ == "__main__":
    main()
