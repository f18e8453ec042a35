"""kiln: training convolutional networks with a C++ core and a PyTorch-shaped API."""

from kiln import _C
from kiln._C import get_num_threads, set_num_threads

__all__ = ["get_num_threads", "set_num_threads"]
__version__ = "0.1.0"
