"""``kiln.backends.cudnn``: PyTorch's cuDNN switches, so programs that set them run.

kiln has no cuDNN: ``is_available()`` is False and the flags are plain module
attributes that programs may read and set (``benchmark``, ``deterministic``,
``enabled``, ``allow_tf32``, with PyTorch's defaults); they change nothing on the CPU,
where kiln's kernels are deterministic whatever they say.
"""

from __future__ import annotations

benchmark = False
deterministic = False
enabled = True
allow_tf32 = True


def is_available() -> bool:
    """False: this build of kiln has no cuDNN."""
    return False


def version() -> int | None:
    """None, as PyTorch answers without cuDNN."""
    return None
