"""DataParallel: PyTorch's single-process data parallelism, on kiln's one device.

kiln computes on one device, so ``DataParallel(module)`` runs ``module`` unchanged:
the wrapper exists so that programs written for several GPUs run as they are, with
the same ``.module`` attribute and the same ``module.``-prefixed state-dict keys.
"""

from __future__ import annotations

from typing import Any

from kiln.nn.modules.module import Module

__all__ = ["DataParallel"]


class DataParallel(Module):
    """Wraps ``module``; ``forward`` calls it with the same arguments.

    Args:
        module: the module to run.
        device_ids, output_device, dim: PyTorch's; accepted. With no CUDA device
            PyTorch too runs the module as it is (``device_ids`` is then empty).
    """

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel: module must be an nn.Module, got "
                            f"{type(module).__name__}")
        self.module = module
        self.device_ids = [] if device_ids is None else list(device_ids)
        self.dim = dim
        if self.device_ids:
            self.output_device = self.device_ids[0] if output_device is None else output_device

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)
