#!/usr/bin/env python
"""Data pipeline throughput: kiln's batched C++ transforms against the classic
per-image pipeline.

    python bench/data.py [--threads 2] [--batches 20] [--batch-size 256]

Augmentation measured (the CIFAR-10 recipe): random horizontal flip, random 32x32
crop of the image zero-padded by 4, color jitter (brightness, contrast, saturation
0.4, hue 0.1, random order), normalize; on 32x32x3 uint8 batches of 256.

- kiln: one Compose of the batched transforms on the (N, 3, 32, 32) batch.
- classic: what torchvision's classic transforms do, one image at a time: a PIL
  image from the dataset's HWC array, PIL flip / pad / crop / ImageEnhance and
  an HSV hue shift, NumPy normalize to CHW float32, then the batch stacked.

Prints images per second of each and the ratio. A benchmark, never a test: each
measurement is a function returning its numbers, so more can be added.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy as np

import kiln
from kiln.data import transforms as T

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)


def kiln_pipeline() -> Callable[[np.ndarray], np.ndarray]:
    return T.Compose([
        T.RandomHorizontalFlip(),
        T.RandomCrop(32, padding=4),
        T.ColorJitter(**JITTER),
        T.Normalize(MEAN, STD),
    ])


def classic_pipeline(rng: random.Random) -> Callable[[np.ndarray], np.ndarray]:
    """The per-image reference: torchvision's classic PIL transforms, written out."""
    from PIL import Image, ImageEnhance, ImageOps

    mean = np.array(MEAN, np.float32)[:, None, None]
    std = np.array(STD, np.float32)[:, None, None]

    def hue(img: Image.Image, factor: float) -> Image.Image:
        h, s, v = img.convert("HSV").split()
        shifted = np.array(h, dtype=np.uint8)
        with np.errstate(over="ignore"):
            shifted += np.uint8(int(factor * 255) % 256)
        return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert("RGB")

    def jitter(img: Image.Image) -> Image.Image:
        ops = [
            lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(0.6, 1.4)),
            lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(0.6, 1.4)),
            lambda im: ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4)),
            lambda im: hue(im, rng.uniform(-0.1, 0.1)),
        ]
        rng.shuffle(ops)
        for op in ops:
            img = op(img)
        return img

    def one(hwc: np.ndarray) -> np.ndarray:
        img = Image.fromarray(hwc)
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = ImageOps.expand(img, border=4, fill=0)
        i, j = rng.randint(0, 8), rng.randint(0, 8)
        img = img.crop((j, i, j + 32, i + 32))
        img = jitter(img)
        chw = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return (chw - mean) / std

    def batch(images_hwc: np.ndarray) -> np.ndarray:
        return np.stack([one(image) for image in images_hwc])

    return batch


def _rate(fn: Callable[[], object], images: int, repeats: int) -> float:
    """Median images per second over `repeats` timed calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return images / statistics.median(times)


def transform_throughput(batch_size: int = 256, batches: int = 20,
                         threads: tuple[int, ...] = (1, 2)) -> dict[str, float]:
    """Images per second: kiln's batched pipeline at each thread count, and the
    classic per-image pipeline (one thread, as in one DataLoader worker)."""
    data = np.random.default_rng(0).integers(0, 256, (batch_size, 3, 32, 32), dtype=np.uint8)
    data_hwc = np.ascontiguousarray(data.transpose(0, 2, 3, 1))
    results: dict[str, float] = {}
    pipeline = kiln_pipeline()
    saved = kiln.get_num_threads()
    try:
        for n in threads:
            kiln.set_num_threads(n)
            results[f"kiln, {n} thread{'s' if n > 1 else ''}"] = _rate(
                lambda: pipeline(data), batch_size, batches)
    finally:
        kiln.set_num_threads(saved)
    try:
        classic = classic_pipeline(random.Random(0))
    except ImportError:
        print("Pillow is missing: pip install Pillow to time the per-image pipeline")
        return results
    results["classic per-image (PIL + NumPy)"] = _rate(
        lambda: classic(data_hwc), batch_size, max(3, batches // 5))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=kiln.get_num_threads(),
                        help="largest kiln thread count to time (1..threads)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per pipeline")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    threads = tuple(sorted({1, max(1, args.threads)}))
    print(f"flip + crop(32, padding=4) + color jitter + normalize, "
          f"{args.batch_size} x 3x32x32 uint8 per batch")
    results = transform_throughput(args.batch_size, args.batches, threads)
    classic = results.get("classic per-image (PIL + NumPy)")
    for name, rate in results.items():
        ratio = f"  {rate / classic:6.1f}x classic" if classic else ""
        print(f"  {name:34s} {rate:12,.0f} images/s{ratio}")


if __name__ == "__main__":
    main()
