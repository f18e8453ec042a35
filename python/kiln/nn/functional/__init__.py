"""Differentiable ops with PyTorch's names, argument order and defaults.

Each op calls a C++ forward kernel and records the matching C++ backward kernel
on the autograd tape. Shapes follow PyTorch: images are (N, C, H, W).
"""

from kiln.nn.functional.activation import *  # noqa: F403
from kiln.nn.functional.conv import *  # noqa: F403
from kiln.nn.functional.distance import *  # noqa: F403
from kiln.nn.functional.dropout import *  # noqa: F403
from kiln.nn.functional.linear import *  # noqa: F403
from kiln.nn.functional.loss import *  # noqa: F403
from kiln.nn.functional.maxout import *  # noqa: F403
from kiln.nn.functional.norm import *  # noqa: F403
from kiln.nn.functional.padding import *  # noqa: F403
from kiln.nn.functional.penalty import *  # noqa: F403
from kiln.nn.functional.pool import *  # noqa: F403
from kiln.nn.functional.resample import *  # noqa: F403
from kiln.nn.functional.stochastic import *  # noqa: F403
