"""torchvision.transforms' names, served by kiln's transforms (kiln.data.transforms):
each takes one PIL image or one (C, H, W) tensor, as torchvision's, and also a batch
(N, C, H, W). Random draws come from kiln's stream (``kiln.manual_seed``)."""

from kiln.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    ConvertImageDtype,
    ElasticTransform,
    FiveCrop,
    GaussianBlur,
    Grayscale,
    InterpolationMode,
    Lambda,
    Normalize,
    Pad,
    PILToTensor,
    RandomAffine,
    RandomApply,
    RandomChoice,
    RandomCrop,
    RandomErasing,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomOrder,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    TenCrop,
    ToPILImage,
    ToTensor,
)

__all__ = [
    "CenterCrop", "ColorJitter", "Compose", "ConvertImageDtype", "ElasticTransform",
    "FiveCrop", "GaussianBlur", "Grayscale", "InterpolationMode", "Lambda", "Normalize",
    "PILToTensor", "Pad", "RandomAffine", "RandomApply", "RandomChoice", "RandomCrop",
    "RandomErasing", "RandomGrayscale", "RandomHorizontalFlip", "RandomOrder",
    "RandomResizedCrop", "RandomRotation", "RandomVerticalFlip", "Resize", "TenCrop",
    "ToPILImage", "ToTensor",
]
