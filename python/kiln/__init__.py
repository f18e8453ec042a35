"""kiln: training convolutional networks with a C++ core and a PyTorch-shaped API."""

# _openblas loads the GEMM library before anything imports the extension.
from kiln import (  # noqa: F401
    _openblas,
    autograd,
    backends,
    cuda,
    data,
    kernels,
    linalg,
    models,
    nn,
    onnx,
    optim,
    recipe,
    train,
    utils,
    visualize,
)
from kiln._C import get_num_threads, set_num_threads
from kiln._device import device
from kiln._dlpack import from_dlpack
from kiln._promotion import get_default_dtype, set_default_dtype
from kiln.autograd import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from kiln.checkpoint import load_state, save_state
from kiln.nn.functional import matmul
from kiln.random import Generator, get_rng_state, initial_seed, manual_seed, set_rng_state
from kiln.serialization import load, save
from kiln.tensor import (
    Tensor,
    arange,
    as_tensor,
    bool_,
    cat,
    channels_last,
    contiguous_format,
    double,
    einsum,
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
    legacy_types,
    linspace,
    long,
    maximum,
    memory_format,
    minimum,
    ones,
    ones_like,
    preserve_format,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    stack,
    tensor,
    twins,
    uint8,
    where,
    zeros,
    zeros_like,
)

float = float32  # noqa: A001  (PyTorch's alias: kiln.float is float32)
half = float16

# kiln.topk, kiln.sort, kiln.max, ...: the torch.* twins of Tensor methods
globals().update(twins)
globals().update(legacy_types)  # kiln.FloatTensor, kiln.LongTensor, ...

__version__ = "0.1.0"

__all__ = [
    "Tensor", "arange", "as_tensor", "autograd", "backends", "bool_", "cat", "cuda", "data",
    "channels_last", "contiguous_format", "device", "memory_format", "preserve_format",
    "double", "einsum", "empty",
    "empty_like", "enable_grad", "float", "float16", "float32", "float64", "from_dlpack",
    "from_numpy", "full", "full_like", "get_num_threads",
    "get_rng_state", "initial_seed", "int32", "int64", "is_grad_enabled", "is_tensor", "kernels",
    "linalg",
    "linspace", "load", "load_state", "long", "manual_seed", "matmul", "maximum", "minimum",
    "models",
    "nn", "no_grad", "ones",
    "ones_like", "optim", "rand", "rand_like", "randint", "randn", "randn_like", "randperm",
    "recipe", "save", "save_state",
    "set_grad_enabled", "set_num_threads", "set_rng_state", "stack", "tensor", "train", "uint8",
    "utils", "where", "zeros", "zeros_like", "Generator", "get_default_dtype", "half",
    "inference_mode", "set_default_dtype", *twins, *legacy_types,
]
