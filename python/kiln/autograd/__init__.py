"""Reverse-mode automatic differentiation on a tape of Functions."""

from kiln.autograd.function import Context, Function, Node
from kiln.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from kiln.autograd.gradcheck import gradcheck
from kiln.autograd.variable import Variable

__all__ = [
    "Context",
    "Function",
    "Node",
    "Variable",
    "enable_grad",
    "gradcheck",
    "inference_mode",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
