"""The layers added for PyTorch programs (activations, losses, pools, padding, resampling,
dropout in eval, containers) as modules against torch.nn: the same repr, the same
state-dict keys, and the same output and input gradient in float64 for one input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _helpers import torch_or_skip

import kiln
import kiln.nn as knn

torch = torch_or_skip()

_RNG = np.random.default_rng(0)


def _x(*shape: int, kind: str = "randn") -> np.ndarray:
    if kind == "unit":
        return _RNG.uniform(0.05, 0.95, shape)
    return _RNG.standard_normal(shape)


# (name, constructor args, constructor kwargs, inputs); modules of one input unless the
# inputs hold several (losses: input, target).
CASES: list[tuple[str, tuple, dict, tuple]] = [
    ("Hardsigmoid", (), {}, (_x(2, 3, 4),)),
    ("Hardsigmoid", (), {"inplace": True}, (_x(2, 3),)),
    ("Mish", (), {}, (_x(2, 3, 4),)),
    ("Mish", (), {"inplace": True}, (_x(3),)),
    ("LogSigmoid", (), {}, (_x(2, 5),)),
    ("Softplus", (), {}, (_x(2, 5) * 10,)),
    ("Softplus", (2, 3), {}, (_x(2, 5) * 3,)),
    ("Softplus", (), {"beta": 0.5, "threshold": 10.0}, (_x(4),)),
    ("Threshold", (0.1, 20.0), {}, (_x(2, 5),)),
    ("Threshold", (0.1, 20), {"inplace": True}, (_x(2, 5),)),
    ("Softmin", (1,), {}, (_x(2, 5),)),
    ("Softmin", (), {"dim": -1}, (_x(2, 3, 4),)),
    ("ReLU6", (), {}, (_x(2, 5) * 5,)),
    ("SiLU", (), {}, (_x(2, 5),)),
    ("Hardswish", (), {}, (_x(2, 5) * 4,)),
    ("Hardtanh", (-2.0, 2.0), {}, (_x(2, 5) * 3,)),
    ("Conv1d", (3, 4, 3), {}, (_x(2, 3, 9),)),
    ("Conv1d", (4, 6, (3,)), {"stride": 2, "padding": 1, "groups": 2, "bias": False},
     (_x(2, 4, 10),)),
    ("Conv1d", (3, 4, 4), {"padding": "same", "dilation": 2}, (_x(2, 3, 9),)),
    ("Conv1d", (3, 2, 3), {"padding": 2, "padding_mode": "reflect"}, (_x(2, 3, 9),)),
    ("Conv1d", (3, 2, 3), {"padding": 1, "padding_mode": "circular"}, (_x(3, 9),)),
    ("MaxPool1d", (3,), {}, (_x(2, 3, 9),)),
    ("MaxPool1d", (3, 2, 1), {"ceil_mode": True}, (_x(2, 3, 10),)),
    ("AvgPool1d", (3,), {}, (_x(2, 3, 9),)),
    ("AvgPool1d", ((3,), 2, 1, True, False), {}, (_x(2, 3, 10),)),
    ("AdaptiveAvgPool1d", (4,), {}, (_x(2, 3, 9),)),
    ("AdaptiveMaxPool1d", (4,), {}, (_x(2, 3, 9),)),
    ("AdaptiveMaxPool2d", ((3, None),), {}, (_x(2, 3, 7, 5),)),
    ("AdaptiveMaxPool2d", (2,), {}, (_x(2, 3, 7, 5),)),
    ("BatchNorm1d", (3,), {}, (_x(4, 3),)),
    ("BatchNorm1d", (3,), {"momentum": 0.3, "affine": False}, (_x(4, 3, 7),)),
    ("ZeroPad2d", (1,), {}, (_x(2, 3, 4, 5),)),
    ("ZeroPad2d", ((1, 2, 0, -1),), {}, (_x(3, 4, 5),)),
    ("ZeroPad1d", (2,), {}, (_x(2, 3, 4),)),
    ("ConstantPad2d", (2, 3.5), {}, (_x(1, 2, 3, 3),)),
    ("ConstantPad1d", ((1, 2), 1), {}, (_x(2, 3, 4),)),
    ("ReflectionPad2d", (1,), {}, (_x(2, 3, 4, 5),)),
    ("ReflectionPad2d", ((1, 0, 2, 1),), {}, (_x(3, 4, 5),)),
    ("ReflectionPad1d", (2,), {}, (_x(2, 3, 4),)),
    ("ReplicationPad2d", ((1, 0, 2, 1),), {}, (_x(2, 3, 4, 5),)),
    ("ReplicationPad1d", (3,), {}, (_x(2, 3, 4),)),
    ("CircularPad2d", (1,), {}, (_x(1, 2, 3, 4),)),
    ("CircularPad1d", ((2, 1),), {}, (_x(2, 3, 4),)),
    ("Dropout1d", (0.3,), {}, (_x(2, 3, 4),)),  # eval mode below: the identity
    ("Dropout2d", (0.3,), {"inplace": True}, (_x(2, 3, 4, 4),)),
    ("AlphaDropout", (0.2,), {}, (_x(2, 5),)),
    ("Upsample", (), {"scale_factor": 2}, (_x(2, 3, 4, 5),)),
    ("Upsample", ((7, 9),), {"mode": "bilinear"}, (_x(2, 3, 4, 5),)),
    ("Upsample", (), {"scale_factor": (2.0, 1.5), "mode": "bilinear", "align_corners": True},
     (_x(1, 2, 4, 5),)),
    ("Upsample", (), {"scale_factor": 3, "mode": "linear"}, (_x(2, 3, 5),)),
    ("UpsamplingNearest2d", (), {"scale_factor": 2}, (_x(2, 3, 4, 5),)),
    ("UpsamplingBilinear2d", (5,), {}, (_x(2, 3, 4, 3),)),
    ("UpsamplingBilinear2d", (), {"scale_factor": 2}, (_x(1, 2, 3, 3),)),
    ("PixelShuffle", (2,), {}, (_x(2, 8, 3, 4),)),
    ("PixelUnshuffle", (2,), {}, (_x(2, 2, 4, 6),)),
    ("Unfold", (2,), {}, (_x(2, 3, 4, 5),)),
    ("Unfold", ((2, 3), 1, 1, 2), {}, (_x(2, 3, 5, 6),)),
    ("Fold", ((4, 5), 2), {}, (_x(2, 12, 12),)),
    ("Fold", (4, 2), {"stride": 2}, (_x(2, 8, 4),)),
    ("BCELoss", (), {}, (_x(3, 4, kind="unit"), _x(3, 4, kind="unit"))),
    ("BCELoss", (), {"reduction": "sum"}, (_x(3, 4, kind="unit"), _x(3, 4, kind="unit"))),
    ("SmoothL1Loss", (), {"beta": 0.5}, (_x(3, 4), _x(3, 4))),
    ("SmoothL1Loss", (), {"reduction": "none"}, (_x(3, 4), _x(3, 4))),
    ("HuberLoss", (), {"delta": 0.5}, (_x(3, 4), _x(3, 4))),
    ("HuberLoss", ("sum",), {}, (_x(3, 4), _x(3, 4))),
    ("KLDivLoss", (), {"reduction": "batchmean"}, (_x(3, 4), _x(3, 4, kind="unit"))),
    ("KLDivLoss", (), {"reduction": "sum", "log_target": True}, (_x(3, 4), _x(3, 4))),
]


def _convert(value: Any, lib: Any) -> Any:
    if isinstance(value, np.ndarray):
        return lib.tensor(value) if lib is torch else kiln.tensor(value)
    return value


@pytest.mark.parametrize(("name", "args", "kwargs", "inputs"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_module_matches_torch(name: str, args: tuple, kwargs: dict, inputs: tuple) -> None:
    k = getattr(knn, name)(*args, **kwargs).double()
    t = getattr(torch.nn, name)(*args, **kwargs).double()
    if "Dropout" in name:  # random in training: compared in eval mode
        k.eval()
        t.eval()
    assert repr(k) == repr(t)
    assert list(k.state_dict()) == list(t.state_dict())
    k.load_state_dict({key: v.numpy() for key, v in t.state_dict().items()})
    kx = [kiln.tensor(a, requires_grad=True) for a in inputs]
    tx = [torch.tensor(a, requires_grad=True) for a in inputs]
    kout = k(*[x.clone() for x in kx]) if k_inplace(k) else k(*kx)
    tout = t(*[x.clone() for x in tx]) if k_inplace(k) else t(*tx)
    np.testing.assert_allclose(kout.detach().numpy(), tout.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    g = _RNG.standard_normal(tuple(tout.shape))
    kout.backward(kiln.tensor(g))
    tout.backward(torch.tensor(g))
    for a, b in zip(kx, tx):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for key, value in t.state_dict().items():  # running statistics
        np.testing.assert_allclose(k.state_dict()[key].numpy(), value.numpy(), rtol=1e-10,
                                   atol=1e-12)


def k_inplace(module: Any) -> bool:
    """In-place modules get a copy of the leaf (PyTorch refuses in-place ops on leaves)."""
    return bool(getattr(module, "inplace", False))


# ---------------------------------------------------------------- ParameterList / Dict
def test_parameter_list_registers_appends_and_prints_as_torch() -> None:
    arrays = [_x(2, 3), _x(4), _x(3).astype(np.float32), _x(1)]
    k = knn.ParameterList([knn.Parameter(kiln.tensor(arrays[0])), kiln.tensor(arrays[1])])
    t = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(arrays[0])),
                                torch.tensor(arrays[1])])
    k.append(kiln.tensor(arrays[2]))
    t.append(torch.tensor(arrays[2]))
    k.extend([kiln.tensor(arrays[3])])
    t.extend([torch.tensor(arrays[3])])
    assert repr(k) == repr(t).replace("torch.", "kiln.")
    assert list(k.state_dict()) == list(t.state_dict()) == ["0", "1", "2", "3"]
    assert len(k) == 4 and isinstance(k[1], knn.Parameter) and k[-1].shape == (1,)
    assert [tuple(p.shape) for p in k] == [tuple(p.shape) for p in t]
    assert isinstance(k[1:3], knn.ParameterList) and len(k[1:3]) == 2
    k[0] = kiln.zeros(5)
    assert k[0].shape == (5,) and isinstance(k[0], knn.Parameter)
    holder = knn.Module()
    holder.weights = k
    assert [name for name, _ in holder.named_parameters()] == [f"weights.{i}" for i in range(4)]
    with pytest.raises(IndexError, match=r"ParameterList.*4"):
        k[4]
    assert repr(knn.ParameterList()) == "ParameterList()"


def test_parameter_list_holds_modules_and_plain_values_as_torch() -> None:
    def entries(nn, lib):
        return [nn.Parameter(lib.ones(2)), 3, nn.Linear(2, 2), lib.ones(3), "x"]

    k, t = knn.ParameterList(entries(knn, kiln)), torch.nn.ParameterList(entries(torch.nn, torch))
    k.append(5)
    t.append(5)
    assert repr(k) == repr(t).replace("torch.", "kiln.")
    assert [type(v).__name__ for v in k] == [type(v).__name__ for v in t]
    assert list(k.state_dict()) == list(t.state_dict()) == ["0", "3", "2.weight", "2.bias"]
    assert len(list(k.parameters())) == len(list(t.parameters())) == 4
    assert k[1] == 3 and k[4] == "x" and k[-1] == 5 and len(k) == 6
    k[1] = kiln.zeros(1)
    assert isinstance(k[1], knn.Parameter) and k[1].requires_grad
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter '0'"):
        k[0] = 1


def test_parameter_dict_registers_updates_and_prints_as_torch() -> None:
    a, b, c = _x(2).astype(np.float32), _x(3, 4).astype(np.float32), _x(1).astype(np.float32)
    k = knn.ParameterDict({"a": knn.Parameter(kiln.tensor(a)), "b": kiln.tensor(b)})
    t = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.tensor(a)), "b": torch.tensor(b)})
    k["c"] = knn.Parameter(kiln.tensor(c))
    t["c"] = torch.nn.Parameter(torch.tensor(c))
    assert repr(k) == repr(t).replace("torch.", "kiln.")
    assert list(k.state_dict()) == list(t.state_dict()) == ["a", "b", "c"]
    assert list(k.keys()) == ["a", "b", "c"] and "a" in k and isinstance(k["b"], knn.Parameter)
    k.update([("d", kiln.zeros(2))])
    assert len(k) == 4 and k.pop("d").shape == (2,) and len(k) == 3
    state = {key: v.detach().numpy() * 0 for key, v in t.state_dict().items()}
    k.load_state_dict(state)
    assert float(k["b"].detach().numpy().sum()) == 0.0
    with pytest.raises(ValueError, match=r"ParameterDict.update.*#0"):
        k.update([("x",)])
    assert repr(knn.ParameterDict()) == "ParameterDict()"
