"""kiln.nn: Module, Parameter, layers and losses, with torch.nn's names and semantics.

``kiln.nn.functional`` holds the differentiable ops the layers call; ``kiln.nn.init``
the weight initializers.
"""

from kiln.nn import functional, init, utils
from kiln.nn.modules import *  # noqa: F403
from kiln.nn.modules import __all__ as _modules_all
from kiln.nn.parameter import Parameter

__all__ = ["Parameter", "functional", "init", "utils", *_modules_all]
