"""kiln.nn's layers, one family per file; everything public is re-exported by kiln.nn.

Each family module lists its public names once, in its ``__all__``; this package
re-exports them, so a new layer is added in its family's file alone.
"""

from kiln.nn.modules import (
    activation,
    container,
    conv,
    dropout,
    flatten,
    linear,
    loss,
    maxout,
    module,
    norm,
    padding,
    parallel,
    pool,
    stochastic,
    sync_batchnorm,
    upsampling,
)
from kiln.nn.modules.activation import *  # noqa: F403
from kiln.nn.modules.container import *  # noqa: F403
from kiln.nn.modules.conv import *  # noqa: F403
from kiln.nn.modules.dropout import *  # noqa: F403
from kiln.nn.modules.flatten import *  # noqa: F403
from kiln.nn.modules.linear import *  # noqa: F403
from kiln.nn.modules.loss import *  # noqa: F403
from kiln.nn.modules.maxout import *  # noqa: F403
from kiln.nn.modules.module import *  # noqa: F403
from kiln.nn.modules.norm import *  # noqa: F403
from kiln.nn.modules.padding import *  # noqa: F403
from kiln.nn.modules.parallel import *  # noqa: F403
from kiln.nn.modules.pool import *  # noqa: F403
from kiln.nn.modules.stochastic import *  # noqa: F403
from kiln.nn.modules.sync_batchnorm import *  # noqa: F403
from kiln.nn.modules.upsampling import *  # noqa: F403

__all__ = sorted(name for family in (activation, container, conv, dropout, flatten,
                                       linear, loss, maxout, module, norm, padding, parallel,
                                       pool, stochastic, sync_batchnorm, upsampling)
                 for name in family.__all__)
