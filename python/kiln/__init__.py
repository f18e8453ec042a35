"""kiln: training convolutional networks with a C++ core and a PyTorch-shaped API."""

# _openblas loads the GEMM library before anything imports the extension.
from kiln import (  # noqa: F401
    _openblas,
    autograd,
    data,
    kernels,
    models,
    nn,
    onnx,
    optim,
    recipe,
    train,
    visualize,
)
from kiln._C import get_num_threads, set_num_threads
from kiln._device import device
from kiln._dlpack import from_dlpack
from kiln.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from kiln.checkpoint import load_state, save_state
from kiln.nn.functional import matmul
from kiln.random import get_rng_state, initial_seed, manual_seed, set_rng_state
from kiln.tensor import (
    Tensor,
    arange,
    bool_,
    cat,
    double,
    empty,
    empty_like,
    float16,
    float32,
    float64,
    from_numpy,
    full,
    full_like,
    int32,
    int64,
    is_tensor,
    linspace,
    long,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    stack,
    tensor,
    uint8,
    where,
    zeros,
    zeros_like,
)

float = float32  # noqa: A001  (PyTorch's alias: kiln.float is float32)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "arange", "autograd", "bool_", "cat", "data", "device", "double", "empty",
    "empty_like", "enable_grad", "float", "float16", "float32", "float64", "from_dlpack",
    "from_numpy", "full", "full_like", "get_num_threads",
    "get_rng_state", "initial_seed", "int32", "int64", "is_grad_enabled", "is_tensor", "kernels",
    "linspace", "load_state", "long", "manual_seed", "matmul", "maximum", "minimum", "models",
    "nn", "no_grad", "ones",
    "ones_like", "optim", "rand", "rand_like", "randint", "randn", "randn_like", "randperm",
    "recipe", "save_state",
    "set_grad_enabled", "set_num_threads", "set_rng_state", "stack", "tensor", "train", "uint8",
    "where", "zeros", "zeros_like",
]
