"""kiln.utils: PyTorch's ``torch.utils`` pieces that training programs use (``data``)."""

from kiln.utils import data

__all__ = ["data"]
