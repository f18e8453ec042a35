"""What augmentation does to a real photo: one row per transform (the original first,
then one random draw per column), written as a PNG grid with ``kiln.data.save_grid``.

    pip install ".[data]" && python examples/augment_grid.py [--out docs/augment_grid.png]

The photo is scikit-learn's bundled sample ``china.jpg`` (no download), shrunk to
96x144. MixUp and CutMix blend it with its mirror image and a channel-swapped copy.
"""

from __future__ import annotations

import argparse

import numpy as np

import kiln
from kiln.data import save_grid
from kiln.data import transforms as T

HEIGHT, WIDTH = 96, 144


def photo() -> np.ndarray:
    """china.jpg as a (1, 3, HEIGHT, WIDTH) uint8 batch."""
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise SystemExit("this example needs scikit-learn's sample photos: "
                         "pip install scikit-learn") from None
    image = load_sample_image("china.jpg").transpose(2, 0, 1)[None]  # (1, 3, 427, 640)
    return T.Resize((HEIGHT, WIDTH))(np.ascontiguousarray(image))


def rows(image: np.ndarray, columns: int) -> list[tuple[str, np.ndarray]]:
    batch = np.repeat(image, columns, axis=0)
    partner = np.concatenate([batch[:, :, :, ::-1], batch[:, ::-1]])[:columns]
    pair = np.ascontiguousarray(np.stack([batch, partner], 1).reshape(-1, 3, HEIGHT, WIDTH))
    pca = T.PCALighting.fit(batch, alphastd=0.5)

    def mixed(mix: T.MixUp | T.CutMix) -> np.ndarray:
        images, _ = mix(pair, np.tile([0, 1], columns))
        return images[::2]

    return [
        ("flip", T.RandomHorizontalFlip()(batch)),
        ("crop", T.RandomCrop((HEIGHT, WIDTH), padding=16, padding_mode="reflect")(batch)),
        ("resized crop", T.RandomResizedCrop((HEIGHT, WIDTH), scale=(0.2, 1.0))(batch)),
        ("jitter", T.ColorJitter(0.5, 0.5, 0.5, 0.2)(batch)),
        ("pca light", pca(batch)),
        ("affine", T.RandomAffine(25, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10)(batch)),
        ("erasing", T.RandomErasing(p=1.0)(batch)),
        ("mixup", mixed(T.MixUp(0.8, num_classes=2))),
        ("cutmix", mixed(T.CutMix(1.0, num_classes=2))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/augment_grid.png")
    parser.add_argument("--columns", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kiln.manual_seed(args.seed)
    image = photo()
    unit = image.astype(np.float32) / 255
    images, labels = [], []
    for name, batch in rows(image, args.columns - 1):
        batch = np.asarray(batch, np.float32) / (255 if batch.dtype == np.uint8 else 1)
        images += [unit, batch]
        labels += ["original"] + [name] * len(batch)
    path = save_grid(np.concatenate(images), args.out, labels=labels, nrow=args.columns,
                     padding=3)
    print(f"wrote {path}: one row per transform, the original photo first")


if __name__ == "__main__":
    main()
