"""RemovableHandle: what the ``register_*_hook`` methods of tensors and modules return."""

from __future__ import annotations

import itertools

__all__ = ["RemovableHandle"]


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook.

    Args:
        hooks: the dict the hook was stored in under ``self.id``.
        flag_sets: sets of hook ids (e.g. "called with kwargs") to forget it in too.
    """

    _next_id = itertools.count()

    def __init__(self, hooks: dict, *flag_sets: set) -> None:
        self.id = next(RemovableHandle._next_id)
        self._hooks = hooks
        self._flag_sets = flag_sets

    def remove(self) -> None:
        self._hooks.pop(self.id, None)
        for flags in self._flag_sets:
            flags.discard(self.id)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
