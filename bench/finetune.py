"""Pretrained against scratch on a small held-out image set (tests/_photo_folder.py):
kiln finetune runs on the training crops, accuracy of each run's last checkpoint (equal epochs) on
the held-out crops (right part of each photo, never seen in training).

    PYTHONPATH=build-dev/stage python bench/finetune.py [--epochs 5] [--size 96]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _photo_folder import make_photo_folders  # noqa: E402

from kiln.cli import main  # noqa: E402
from kiln.commands.predict import _from_checkpoint  # noqa: E402
from kiln.data import ImageFolder  # noqa: E402
from kiln.models.classify import preprocess_array, top_k  # noqa: E402


def held_out_accuracy(checkpoint: Path, folder: Path) -> float:
    model, pre, _ = _from_checkpoint(str(checkpoint))
    data = ImageFolder(folder, size=pre.crop)
    images, labels = (t.numpy() for t in data.tensors)
    ranked = top_k(model, preprocess_array(images, pre), k=1)
    return float(np.mean([r[0][0] == y for r, y in zip(ranked, labels)]))


def main_() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--train", type=int, default=12, help="training crops per class")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    train, test = make_photo_folders(root, size=args.size, train_per_class=args.train,
                                     test_per_class=20)
    setups = {
        "pretrained, frozen backbone": ["--weights", "imagenet", "--freeze"],
        "pretrained, frozen, head 1e-2": ["--weights", "imagenet", "--freeze", "--head-lr",
                                          "1e-2"],
        "pretrained, all layers": ["--weights", "imagenet", "--backbone-lr", "1e-4"],
        "scratch, lr 1e-3": ["--weights", "none", "--backbone-lr", "1e-3"],
        "scratch, lr 3e-3": ["--weights", "none", "--head-lr", "3e-3", "--backbone-lr", "3e-3"],
    }
    print(f"{args.train} training crops per class, 20 held-out per class, "
          f"{args.size}x{args.size}, {args.epochs} epochs, efficientnet_lite0")
    for label, extra in setups.items():
        accs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            name = f"{label.split(',')[0]}-{len(accs)}-{abs(hash(label)) % 1000}"
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                code = main(["finetune", "--data", f"folder:{train}", "--epochs",
                             str(args.epochs), "--image-size", str(args.size), "--batch-size",
                             "8", "--seed", str(seed), "--out", str(root / "runs"), "--name",
                             name, "--quiet", *extra])
            assert code == 0, label
            accs.append(held_out_accuracy(root / "runs" / name / "last.safetensors", test))
        print(f"{label:<30} held-out accuracy {np.mean(accs):.3f} "
              f"(seeds: {', '.join(f'{a:.3f}' for a in accs)}; "
              f"{(time.perf_counter() - start) / args.seeds:.1f} s per run)")


if __name__ == "__main__":
    main_()
