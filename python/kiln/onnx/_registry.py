"""Which converter turns which kiln Function into ONNX nodes.

A converter is ``fn(g, call, args) -> outputs``: ``g`` the GraphBuilder, ``call`` the
recorded Call (outputs' traced shapes, the module that ran it), ``args`` the Function's
arguments with every Tensor replaced by its Value. It returns one entry per Function
output: a value name, a ``(name, batched)`` pair to say whether dim 0 is still the
batch (default: it is when an input's is and the traced size agrees), or None for an
output that cannot be exported (an error names it if the graph uses it).
"""

from __future__ import annotations

from typing import Any, Callable

Converter = Callable[..., Any]

CONVERTERS: dict[type, Converter] = {}


def converter(*functions: type) -> Callable[[Converter], Converter]:
    """Registers the decorated converter for each Function class in ``functions``."""

    def register(fn: Converter) -> Converter:
        for function in functions:
            CONVERTERS[function] = fn
        return fn

    return register
