"""Batched image augmentation on NCHW batches (uint8 or float32), in C++.

Every transform is a callable on a whole batch, ``t(images) -> images``, for NumPy
arrays or kiln Tensors of shape (N, C, H, W) (or one (C, H, W) image), returning
the same kind. Images are processed in parallel; each draws its own random
parameters from a counter-based Philox stream keyed by (seed, counter, image index),
so results are identical for any thread count. They take torchvision's arguments, and
each also takes one PIL image (returning a PIL image), so with ToTensor, PILToTensor,
ToPILImage, ConvertImageDtype, Grayscale, Lambda, RandomApply/Choice/Order they serve
torchvision's per-sample pipelines too (``kiln.vision.transforms``). Seeding:
``kiln.manual_seed``, or ``seed=`` / ``generator=`` to a transform's constructor or to
one call (the DataLoader passes a per-batch ``seed``). uint8 pixels are 0..255;
float32 pixels are taken to lie in [0, 1] where a transform clamps (ColorJitter).

Example (CIFAR-10)::

    train_tf = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
                        ColorJitter(0.4, 0.4, 0.4), Normalize(mean, std)])
    x = train_tf(images_uint8)                 # float32 (N, 3, 32, 32)
    x, targets = CutMix(1.0, 10)(x, labels)    # soft targets for cross_entropy
"""

from kiln.data.transforms._core import Compose, Generator, InterpolationMode, Transform
from kiln.data.transforms.choice import Lambda, RandomApply, RandomChoice, RandomOrder
from kiln.data.transforms.color import (
    ColorJitter,
    Grayscale,
    Normalize,
    PCALighting,
    RandomGrayscale,
    ToFloat,
)
from kiln.data.transforms.convert import ConvertImageDtype, PILToTensor, ToPILImage, ToTensor
from kiln.data.transforms.geometry import (
    CenterCrop,
    ElasticTransform,
    GaussianBlur,
    Pad,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)
from kiln.data.transforms.mixing import CutMix, MixUp
from kiln.data.transforms.occlusion import Cutout, RandomErasing
from kiln.data.transforms.tta import FiveCrop, MultiScaleCrop, TenCrop, tta_predict

__all__ = [
    "CenterCrop", "ColorJitter", "Compose", "ConvertImageDtype", "CutMix", "Cutout",
    "ElasticTransform", "FiveCrop", "GaussianBlur", "Generator", "Grayscale",
    "InterpolationMode", "Lambda", "MixUp", "MultiScaleCrop", "Normalize", "PCALighting",
    "PILToTensor", "Pad", "RandomAffine", "RandomApply", "RandomChoice", "RandomCrop",
    "RandomErasing", "RandomGrayscale", "RandomHorizontalFlip", "RandomOrder",
    "RandomResizedCrop", "RandomRotation", "RandomVerticalFlip", "Resize", "TenCrop",
    "ToFloat", "ToPILImage", "ToTensor", "Transform", "tta_predict",
]
