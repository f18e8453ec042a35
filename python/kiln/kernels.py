"""kiln's C++ kernels on NumPy arrays, without autograd.

For scripts that want the fast kernels alone: every function takes C-contiguous
float32 (or float64) arrays in PyTorch's layouts, checks shapes, dtypes and
ranges like the differentiable ops do, releases the GIL while it runs and
returns new arrays. ``help(kiln.kernels.conv2d_forward)`` states the shapes.
Families: conv2d / conv_transpose2d (forward, backward_input, backward_weight),
pooling, batch norm, linear and matmul, activations, losses, dropout.
"""

from kiln import _C

_RUNTIME = {"set_num_threads", "get_num_threads"}

__all__ = sorted(n for n in dir(_C) if not n.startswith("_") and n not in _RUNTIME)
globals().update({name: getattr(_C, name) for name in __all__})
