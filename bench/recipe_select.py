"""Chooses `kiln train`'s default recipe on data it never trains or selects on.

The 5,000 embedded MNIST digits are dealt into 5 stratified folds (seed 2026). For
fold f, a recipe runs as its own `kiln train` process (seed f) on the other 4,000
digits, which it splits again into its own training and validation parts and on
which it picks its best epoch; its `best.safetensors` is then scored on fold f's
1,000 digits, which nothing in the run has seen (and, for comparison, the last
epoch's `last.safetensors`). Over the 5 folds every digit is
scored once, so each recipe's accuracy rests on 5,000 held-out predictions (a
standard error of about 0.2 points near 98%) and on 5 seeds. The table also gives
each run's whole-process wall time.

    python bench/recipe_select.py                          # every recipe below
    python bench/recipe_select.py --recipes default b128 --folds 0 1 2

The official MNIST test set is not used here: the recipe that ships is judged on
it once, afterwards.
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
    "b64-lr3": ["--batch-size", "64", "--lr", "3e-3"],  # the default before 2026-12
    "b128": ["--batch-size", "128", "--lr", "4e-3"],
    "b128-val10": ["--batch-size", "128", "--lr", "4e-3", "--val-split", "0.1"],
    "b128-val10-wd": ["--batch-size", "128", "--lr", "6e-3", "--weight-decay", "1e-3",
                      "--val-split", "0.1"],
    "b128-e20": ["--batch-size", "128", "--epochs", "20", "--lr", "4e-3"],
    "b128-e25": ["--batch-size", "128", "--epochs", "25", "--lr", "4e-3"],
    "b128-lr6": ["--batch-size", "128", "--lr", "6e-3"],
    "b128-wd": ["--batch-size", "128", "--lr", "4e-3", "--weight-decay", "5e-4"],
    "b128-e40": ["--batch-size", "128", "--epochs", "40", "--lr", "4e-3"],
    "b256-e40": ["--batch-size", "256", "--epochs", "40", "--lr", "6e-3"],
    "val10-e40": ["--val-split", "0.1", "--epochs", "40"],
    "no-smoothing": ["--label-smoothing", "0"],  # the default before 2026-12-02
}
FOLDS = 5


def folds(folder: Path) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(npz of the 4,000 digits a run may use, held-out images, held-out labels) per fold."""
    from kiln.data import kfold, mnist_sample

    images, labels = (t.numpy() for t in mnist_sample().tensors)
    result = []
    for index, (use, held) in enumerate(kfold(len(labels), FOLDS, seed=2026, stratify=labels)):
        path = folder / f"fold{index}.npz"
        np.savez(path, images=images[use], labels=labels[use])
        result.append((path, images[held], labels[held]))
    return result


def held_out_correct(checkpoint: Path, images: np.ndarray, labels: np.ndarray) -> int:
    import kiln
    from kiln.checkpoint import load_checkpoint
    from kiln.commands import _shared

    config = _shared._read_checkpoint_extra(str(checkpoint))
    model = _shared._build_model(config)
    load_checkpoint(checkpoint, model)
    model.eval()
    with kiln.no_grad():
        logits = model(kiln.from_numpy(_shared._normalized(config, images)))
    return int((logits.numpy().argmax(1) == labels).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--folds", nargs="+", type=int, default=list(range(FOLDS)))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="run fold f with seed f + this (repeats with other seeds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = folds(Path(tmp))
        print(f"{'recipe':<15} {'held-out accuracy':>17} {'per fold':<44} {'wall s':>7} "
              f"{'last.safetensors':>16}")
        for name in args.recipes:
            correct, total, per_fold, walls, last = 0, 0, [], [], 0
            for fold in args.folds:
                path, images, labels = data[fold]
                out = Path(tmp) / f"{name}-{fold}"
                seed = fold + args.seed_offset
                argv = [sys.executable, "-m", "kiln.cli", "train", "--data", f"npz:{path}",
                        "--quiet", "--seed", str(seed), "--threads", str(args.threads),
                        "--out", str(out), "--name", "run", *RECIPES[name]]
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=os.environ)
                walls.append(time.perf_counter() - start)
                right = held_out_correct(out / "run" / "best.safetensors", images, labels)
                last += held_out_correct(out / "run" / "last.safetensors", images, labels)
                correct, total = correct + right, total + len(labels)
                per_fold.append(round(right / len(labels), 4))
            print(f"{name:<15} {correct / total:>17.4f} {json.dumps(per_fold):<44} "
                  f"{np.mean(walls):>7.1f} {last / total:>16.4f}", flush=True)


if __name__ == "__main__":
    main()
