"""A small image-folder classification task built offline from the photos that
scikit-learn (china.jpg, flower.jpg) and matplotlib (grace_hopper.jpg) ship.

Class k = "a crop of photo k". Training crops come from the left part of each photo,
held-out crops from the right part (no pixel is shared between the two sets), at random
positions and scales (35-65% of the short side), with random horizontal flips, then
resized to ``size`` x ``size``. The held-out set therefore asks whether a network
recognizes unseen parts of a scene (temple roof and trees, petals, uniform and face).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("china", "flower", "grace_hopper")


def _photos() -> dict[str, np.ndarray]:
    import matplotlib
    from PIL import Image
    from sklearn.datasets import load_sample_image

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(hopper) as image:
        grace = np.asarray(image.convert("RGB"))
    return {"china": load_sample_image("china.jpg"), "flower": load_sample_image("flower.jpg"),
            "grace_hopper": grace}


def _crops(photo: np.ndarray, count: int, x_range: tuple[float, float], size: int,
           rng: np.random.Generator) -> list[np.ndarray]:
    from PIL import Image

    h, w = photo.shape[:2]
    lo, hi = int(x_range[0] * w), int(x_range[1] * w)
    out = []
    for _ in range(count):
        side = int(rng.uniform(0.35, 0.65) * min(h, w))
        side = min(side, hi - lo)
        x = int(rng.integers(lo, hi - side + 1))
        y = int(rng.integers(0, h - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size),
                                                                     Image.BILINEAR)
        array = np.asarray(crop)
        out.append(array[:, ::-1] if rng.random() < 0.5 else array)
    return out


def make_photo_folders(root: Path, size: int = 64, train_per_class: int = 12,
                       test_per_class: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """Writes root/train/CLASS/*.png and root/test/CLASS/*.png; returns both folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folders = (Path(root) / "train", Path(root) / "test")
    for name, photo in _photos().items():
        for folder, count, x_range in ((folders[0], train_per_class, (0.0, 0.55)),
                                       (folders[1], test_per_class, (0.55, 1.0))):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(_crops(photo, count, x_range, size, rng)):
                Image.fromarray(np.ascontiguousarray(crop)).save(folder / name / f"{i:03d}.png")
    return folders
