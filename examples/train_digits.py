"""Train a small CNN on scikit-learn's bundled 8x8 digits with a hand-written SGD loop.

    pip install ".[examples]" && python examples/train_digits.py

Every step is the loop from the slides: sample a mini-batch, forward, loss,
backward, update (``p -= lr * p.grad`` under ``kiln.no_grad()``). No download:
the 1,797 digits ship inside scikit-learn.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import kiln
import kiln.nn.functional as F
from kiln import nn


def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation split of the digits as (N, 1, 8, 8) float32 images and int64 labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise SystemExit(
            "this example needs scikit-learn's bundled digits: pip install scikit-learn"
        ) from None
    digits = sklearn_digits()
    images = digits.images.astype(np.float32)[:, None] / 16.0
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    train, val = order[:1500], order[1500:]
    mean, std = images[train].mean(), images[train].std()  # statistics of the training set only
    images = (images - mean) / std
    return images[train], labels[train], images[val], labels[val]


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4 -> 2x2
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * 2 * 2, 10),
    )


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with kiln.no_grad():
        predictions = model(kiln.from_numpy(images)).argmax(1).numpy()
    model.train()
    return float((predictions == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kiln.manual_seed(args.seed)
    x_train, y_train, x_val, y_val = load_digits(args.seed)
    model = make_model()
    params = list(model.parameters())
    print(f"{len(x_train)} training and {len(x_val)} validation digits; "
          f"{sum(p.numel() for p in params):,} parameters")

    with kiln.no_grad():
        logits = model(kiln.from_numpy(x_train[:256]))
        initial = F.cross_entropy(logits, kiln.from_numpy(y_train[:256]))
    print(f"initial loss {initial.item():.3f} (log 10 = {math.log(10):.3f} expected)")

    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        start, losses = time.perf_counter(), []
        order = rng.permutation(len(x_train))
        for first in range(0, len(order), args.batch_size):
            batch = order[first : first + args.batch_size]
            logits = model(kiln.from_numpy(x_train[batch]))
            loss = F.cross_entropy(logits, kiln.from_numpy(y_train[batch]))
            for p in params:
                p.grad = None
            loss.backward()
            with kiln.no_grad():
                for p in params:
                    p -= args.lr * p.grad
            losses.append(loss.item())
        print(
            f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  "
            f"train acc {accuracy(model, x_train, y_train):.3f}  "
            f"val acc {accuracy(model, x_val, y_val):.3f}  "
            f"({time.perf_counter() - start:.2f} s)"
        )


if __name__ == "__main__":
    main()
