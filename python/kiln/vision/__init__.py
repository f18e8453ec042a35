"""torchvision's surface on kiln: ``kiln.vision.transforms``, ``.datasets``, ``.models``
and ``.utils`` answer ``torchvision.transforms``, ``torchvision.datasets``,
``torchvision.models`` and ``torchvision.utils`` (and ``.functional``,
``torchvision.transforms.functional``) under ``kiln run`` (kiln.run.MODULES).

Per-sample semantics, as torchvision: a dataset's ``__getitem__`` returns one image
(a PIL image when Pillow is installed, else an (H, W, C) / (H, W) uint8 array) and an
int target, after its ``transform``/``target_transform``; the transforms act on one
PIL image or one (C, H, W) tensor (kiln's batched transforms, which also take a
batch); ``kiln.utils.data.DataLoader`` collates the samples.
"""

from kiln.vision import datasets, functional, models, transforms, utils

__all__ = ["datasets", "functional", "models", "transforms", "utils"]
