"""kiln.nn modules: bookkeeping as torch.nn.Module does it, every layer against PyTorch with
the same weights (copied in through load_state_dict), containers, and bad input."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from _helpers import arr, assert_close

import kiln
from kiln import nn
from kiln.autograd import gradcheck


def copy_weights(kiln_module: nn.Module, torch_module) -> None:
    state = {k: kiln.tensor(v.detach().numpy().copy()) for k, v in
             torch_module.state_dict().items()}
    result = kiln_module.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []


# Same architecture written once for both libraries: `lib` is kiln.nn or torch.nn and
# `zeros` that library's zeros factory.
def build_net(lib, zeros):
    class Block(lib.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = lib.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn = lib.BatchNorm2d(c)
            self.act = lib.ReLU()
            self.register_buffer("scale", zeros(c))
            self.register_buffer("scratch", zeros(2), persistent=False)

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.stem = lib.Sequential(OrderedDict([
                ("conv", lib.Conv2d(3, 4, 3)), ("bn", lib.BatchNorm2d(4)),
                ("act", lib.PReLU(4)),
            ]))
            self.blocks = lib.ModuleList([Block(4), Block(4)])
            self.heads = lib.ModuleDict({"cls": lib.Linear(4, 10), "aux": lib.Linear(4, 2, False)})
            self.shared = self.heads["cls"]
            self.norm = lib.BatchNorm1d(10, affine=False)
            self.untracked = lib.BatchNorm1d(10, track_running_stats=False)
            self.register_parameter("temperature", None)
            self.tail = lib.Sequential(lib.Flatten(), lib.Dropout(0.1), lib.Identity())

    return Net()


# ---------------------------------------------------------------- bookkeeping vs torch
def test_names_orders_and_state_dict_keys_equal_torch(torch):
    k, t = build_net(nn, kiln.zeros), build_net(torch.nn, torch.zeros)
    assert [n for n, _ in k.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [p.shape for p in k.parameters()] == [tuple(p.shape) for p in t.parameters()]
    assert [n for n, _ in k.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in k.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in k.named_children()] == [n for n, _ in t.named_children()]
    assert list(k.state_dict()) == list(t.state_dict())
    assert [n for n, _ in k.named_parameters(prefix="model", recurse=True)] == \
        [n for n, _ in t.named_parameters(prefix="model")]
    assert [n for n, _ in k.blocks[0].named_parameters(recurse=False)] == \
        [n for n, _ in t.blocks[0].named_parameters(recurse=False)]
    assert [n for n, _ in k.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in t.named_parameters(remove_duplicate=False)]
    assert repr(k) == repr(t).replace("torch.", "kiln.")
    copy_weights(k, t)


def test_state_dict_values_share_storage_and_are_detached():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                           "1.running_var", "1.num_batches_tracked"]
    assert not state["0.weight"].requires_grad and state["0.weight"].is_leaf
    state["0.weight"].numpy()[...] = 7.0
    assert (arr(model[0].weight) == 7.0).all()
    assert state["1.num_batches_tracked"].dtype == kiln.int64
    kept = model.state_dict(keep_vars=True)
    assert kept["0.weight"] is model[0].weight
    assert list(model.state_dict(prefix="net.")) == ["net." + key for key in state]


def test_load_state_dict_copies_in_place_and_reports_keys():
    src, dst = nn.Linear(4, 3), nn.Linear(4, 3)
    weight = dst.weight
    assert repr(dst.load_state_dict(src.state_dict())) == "<All keys matched successfully>"
    assert dst.weight is weight
    assert np.array_equal(arr(dst.weight), arr(src.weight))
    assert not np.shares_memory(arr(dst.weight), arr(src.weight))
    # NumPy arrays are accepted too, and float64 values are cast to the parameter's dtype.
    dst.load_state_dict({"weight": np.ones((3, 4)), "bias": np.zeros(3)})
    assert dst.weight.dtype == kiln.float32 and (arr(dst.weight) == 1).all()


def test_load_state_dict_strict_errors_list_missing_and_unexpected_keys():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    state = model.state_dict()
    del state["2.bias"]
    state["2.gamma"] = kiln.zeros(2)
    state["5.weight"] = kiln.zeros(2)
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.bias"') as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert 'Unexpected key(s) in state_dict: "5.weight", "2.gamma"' in message
    assert "Sequential" in message
    assert isinstance(info.value, ValueError)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["2.bias"]
    assert result.unexpected_keys == ["5.weight", "2.gamma"]
    missing, unexpected = result
    assert missing == ["2.bias"]


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    state = {"0.weight": kiln.zeros(8, 3, 5, 5), "0.bias": kiln.zeros(8)}
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"size mismatch for 0.weight: copying a param with "
                           r"shape \(8, 3, 5, 5\) from checkpoint, the shape in current model "
                           r"is \(8, 3, 3, 3\)"):
            model.load_state_dict(state, strict=strict)
    with pytest.raises(RuntimeError, match='parameter named "0.bias"'):
        model.load_state_dict({"0.weight": kiln.zeros(8, 3, 3, 3), "0.bias": [0.0] * 8})
    with pytest.raises(TypeError, match="dict-like"):
        model.load_state_dict([("0.weight", kiln.zeros(8, 3, 3, 3))])


def test_load_state_dict_assign_and_old_batchnorm_checkpoints():
    lin = nn.Linear(2, 2)
    new_weight = kiln.ones(2, 2)
    lin.load_state_dict({"weight": new_weight, "bias": kiln.zeros(2)}, assign=True)
    assert isinstance(lin.weight, nn.Parameter) and lin.weight.requires_grad
    assert np.shares_memory(arr(lin.weight), arr(new_weight))
    bn = nn.BatchNorm2d(3)
    bn.num_batches_tracked.numpy()[...] = 4
    old = {k: v for k, v in nn.BatchNorm2d(3).state_dict().items() if "num_batches" not in k}
    assert bn.load_state_dict(old).missing_keys == []
    assert bn.num_batches_tracked.item() == 4


def test_non_persistent_buffers_and_buffer_assignment():
    m = nn.Module()
    m.register_buffer("stat", kiln.zeros(3))
    m.register_buffer("tmp", kiln.ones(2), persistent=False)
    m.register_buffer("empty", None)
    assert list(m.state_dict()) == ["stat"]
    assert [n for n, _ in m.named_buffers()] == ["stat", "tmp"]
    m.stat = kiln.ones(3)
    assert (arr(m.state_dict()["stat"]) == 1).all()
    with pytest.raises(TypeError, match="buffer 'stat'"):
        m.stat = np.ones(3)
    m.register_buffer("tmp", kiln.ones(2))  # re-registering makes it persistent
    assert list(m.state_dict()) == ["stat", "tmp"]


def test_registration_rules():
    m = nn.Module()
    m.w = nn.Parameter(kiln.zeros(2))
    assert [n for n, _ in m.named_parameters()] == ["w"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = kiln.zeros(2)
    m.w = None
    assert list(m.parameters()) == [] and m.w is None
    m.child = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="child module 'child'"):
        m.child = 3
    m.child = nn.Parameter(kiln.zeros(1))  # replacing a child by a parameter moves it
    assert list(m._modules) == [] and "child" in m._parameters
    m.plain = 3
    assert m.plain == 3 and "plain" in m.__dict__
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("plain", None)
    with pytest.raises(KeyError, match=r'contain "\."'):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="empty string"):
        m.register_buffer("", None)
    with pytest.raises(TypeError, match="name should be a string"):
        m.add_module(3, nn.ReLU())
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("x", "relu")
    with pytest.raises(TypeError, match="kiln.nn.Parameter or None required"):
        m.register_parameter("p", kiln.zeros(1))
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nothing'"):
        _ = m.nothing
    del m.child
    assert "child" not in m._parameters
    m.add_module("sub", nn.ReLU())
    assert m.get_submodule("sub") is m.sub and "sub" in dir(m)
    with pytest.raises(AttributeError, match="no submodule"):
        m.get_submodule("sub.x")

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(kiln.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Early()
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_train_eval_propagate():
    model = build_net(nn, kiln.zeros)
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.blocks.train()
    assert model.blocks[1].bn.training and not model.stem.training
    model.train(False)
    assert not model.blocks[1].bn.training
    with pytest.raises(ValueError, match="boolean"):
        model.train("yes")


def test_zero_grad_and_requires_grad():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    for p in model.parameters():
        p.grad = kiln.ones(*p.shape)
    model.zero_grad(set_to_none=False)
    assert all((arr(p.grad) == 0).all() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    model[1].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_apply_visits_children_first():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Tanh()))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Tanh", "Sequential", "Sequential"]
    model.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert (arr(model[0].weight) == 0).all()


def test_to_double_float_keep_parameter_identity():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    weight = model[0].weight
    weight.grad = kiln.ones(*weight.shape)
    assert model.double() is model
    assert model[0].weight is weight and weight.dtype == kiln.float64
    assert weight.grad.dtype == kiln.float64
    assert model[1].running_var.dtype == kiln.float64
    assert model[1].num_batches_tracked.dtype == kiln.int64
    model.to(kiln.float32)
    assert weight.dtype == kiln.float32
    model.to("cpu", dtype=np.float64)
    assert weight.dtype == kiln.float64
    model.to(kiln.zeros(1, dtype=kiln.float32))
    assert weight.dtype == kiln.float32
    model.float().to(device="cpu")
    assert model.cpu() is model
    with pytest.raises(RuntimeError, match="cuda"):
        model.to("cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        model.cuda()
    with pytest.raises(TypeError, match="floating point"):
        model.to(kiln.int64)
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.to(dtyp=kiln.float64)
    with pytest.raises(TypeError, match="not a dtype"):
        model.to(object())


def test_forward_hooks_pre_hooks_and_removal():
    lin = nn.Identity()
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h2 = lin.register_forward_hook(lambda m, args, out: out + 1)
    h3 = lin.register_forward_hook(lambda m, args, out: calls.append((args, out)))
    x = kiln.tensor([1.0, 2.0])
    assert arr(lin(x)).tolist() == [3.0, 5.0]
    assert arr(calls[0][0][0]).tolist() == [2.0, 4.0]
    h1.remove()
    h2.remove()
    h1.remove()  # removing twice is harmless
    assert arr(lin(x)).tolist() == [1.0, 2.0]
    h3.remove()
    assert arr(lin(x)).tolist() == [1.0, 2.0] and len(calls) == 2
    # single return value from a pre-hook is wrapped; prepend and kwargs variants
    order = []
    lin.register_forward_pre_hook(lambda m, args: args[0] + 10)
    lin.register_forward_pre_hook(lambda m, args: order.append("second"))
    lin.register_forward_pre_hook(lambda m, args: order.append("first"), prepend=True)
    assert arr(lin(x)).tolist() == [11.0, 12.0] and order == ["first", "second"]
    with lin.register_forward_hook(lambda m, a, kw, out: out * kw.get("k", 1),
                                   with_kwargs=True):
        assert arr(lin(x)).tolist() == [11.0, 12.0]
    with pytest.raises(TypeError, match="callable"):
        lin.register_forward_hook(3)


def test_forward_pre_hook_with_kwargs_and_always_call():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            if factor == 0:
                raise ValueError("Scale: factor 0")
            return x * factor

    m = Scale()
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": 3.0}),
                                with_kwargs=True)
    assert arr(m(kiln.tensor([1.0]))).tolist() == [3.0]
    bad = Scale()
    bad.register_forward_pre_hook(lambda mod, args, kwargs: "oops", with_kwargs=True)
    with pytest.raises(RuntimeError, match="forward pre-hook must return None or a tuple"):
        bad(kiln.tensor([1.0]))
    seen = []
    failing = Scale()
    failing.register_forward_hook(lambda mod, a, out: seen.append(out), always_call=True)
    with pytest.raises(ValueError, match="factor 0"):
        failing(kiln.tensor([1.0]), factor=0)
    assert seen == [None]


def test_deepcopy_and_pickle_give_independent_modules():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter)
    clone[0].weight.detach().numpy()[...] = 0
    assert not (arr(model[0].weight) == 0).all()
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(arr(restored[0].weight), arr(model[0].weight))
    assert list(restored.state_dict()) == list(model.state_dict())


def test_parameter():
    p = nn.Parameter(kiln.zeros(2, 3))
    assert isinstance(p, kiln.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(kiln.zeros(1), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    shared = kiln.ones(2)
    assert np.shares_memory(arr(nn.Parameter(shared)), arr(shared))
    with pytest.raises(TypeError, match="Parameter: data must be a kiln.Tensor"):
        nn.Parameter(np.zeros(2))


# ------------------------------------------------------------------------ containers
def test_sequential_indexing_slicing_and_editing():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    assert isinstance(seq[1:], nn.Sequential) and list(seq[1:]) == [b, c]
    named = nn.Sequential(OrderedDict([("fc", a), ("act", b)]))
    assert list(named[1:]._modules) == ["act"] and named.fc is a
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    seq.insert(1, nn.ReLU())
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Tanh", "Linear", "Sigmoid"]
    assert isinstance(seq.pop(1), nn.ReLU)
    del seq[0]
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is c
    seq.extend([nn.Identity()])
    assert len(seq) == 4 and len(seq + nn.Sequential(nn.ReLU())) == 5
    with pytest.raises(IndexError, match="out of range"):
        seq[4]
    with pytest.raises(IndexError, match="out of range"):
        seq.insert(9, nn.ReLU())
    with pytest.raises(TypeError):
        seq["0"]
    with pytest.raises(TypeError, match="expected a kiln.nn.Module"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError, match="add operator"):
        seq + [nn.ReLU()]
    x = kiln.tensor([[1.0, -2.0]])
    out = nn.Sequential(a, nn.Identity())(x)
    assert out.shape == (1, 3)


def test_module_list_and_module_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    holder = nn.Module()
    holder.layers = layers
    assert [n for n, _ in holder.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    layers.append(nn.ReLU()).extend([nn.Tanh()])
    layers.insert(0, nn.Sigmoid())
    layers += [nn.Identity()]
    assert [type(m).__name__ for m in layers] == [
        "Sigmoid", "Linear", "Linear", "Linear", "ReLU", "Tanh", "Identity"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert list(layers._modules) == [str(i) for i in range(6)]
    assert isinstance(layers.pop(), nn.Identity) and len(layers) == 5
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(nn.ReLU())
    with pytest.raises(NotImplementedError):
        layers(kiln.zeros(1))
    assert repr(nn.ModuleList()) == "ModuleList()"

    d = nn.ModuleDict({"a": nn.ReLU()})
    d["b"] = nn.Linear(1, 1)
    d.update([("c", nn.Tanh())])
    assert list(d) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert [n for n, _ in d.named_parameters()] == ["b.weight", "b.bias"]
    assert isinstance(d.pop("a"), nn.ReLU) and list(d.keys()) == ["b", "c"]
    assert [type(m).__name__ for m in d.values()] == ["Linear", "Tanh"]
    with pytest.raises(TypeError, match="expected a kiln.nn.Module"):
        d["x"] = 3
    with pytest.raises(ValueError, match="pair"):
        d.update([("x",)])
    d.clear()
    assert len(d) == 0


def test_module_list_repr_equals_torch(torch):
    k = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)])
    t = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.ReLU(),
                             torch.nn.Linear(2, 2)])
    assert repr(k) == repr(t)


# --------------------------------------------------------------- layers vs PyTorch
# Each case builds the same layer from `lib` (kiln.nn or torch.nn); PyTorch's weights are
# copied into kiln's through load_state_dict, then forward, the input gradient, every
# parameter gradient and the buffers are compared.
LAYER_CASES = [
    ("conv", lambda lib: lib.Conv2d(3, 5, 3), (2, 3, 9, 11)),
    ("conv_7x7_s2_p3", lambda lib: lib.Conv2d(4, 6, 7, stride=2, padding=3), (1, 4, 15, 13)),
    ("conv_1x1_nobias", lambda lib: lib.Conv2d(6, 4, 1, bias=False), (2, 6, 5, 5)),
    ("conv_groups_dilation",
     lambda lib: lib.Conv2d(6, 9, 3, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3),
     (2, 6, 10, 9)),
    ("conv_depthwise", lambda lib: lib.Conv2d(4, 8, 3, padding=1, groups=4), (3, 4, 8, 7)),
    ("conv_same_even", lambda lib: lib.Conv2d(3, 4, 4, padding="same"), (2, 3, 7, 8)),
    ("conv_same_dilated", lambda lib: lib.Conv2d(3, 4, (2, 3), padding="same", dilation=(1, 2)),
     (1, 3, 6, 9)),
    ("conv_valid", lambda lib: lib.Conv2d(3, 4, 3, padding="valid"), (2, 3, 5, 6)),
    ("conv_reflect", lambda lib: lib.Conv2d(3, 4, 3, padding=2, padding_mode="reflect"),
     (2, 3, 6, 7)),
    ("conv_replicate", lambda lib: lib.Conv2d(2, 4, 3, padding=(1, 2), padding_mode="replicate"),
     (2, 2, 5, 4)),
    ("conv_circular", lambda lib: lib.Conv2d(2, 3, 3, stride=2, padding=1,
                                             padding_mode="circular"), (1, 2, 7, 6)),
    ("conv_same_reflect", lambda lib: lib.Conv2d(2, 3, 4, padding="same", padding_mode="reflect"),
     (2, 2, 6, 6)),
    ("tconv", lambda lib: lib.ConvTranspose2d(4, 6, 3), (2, 4, 5, 6)),
    ("tconv_s2", lambda lib: lib.ConvTranspose2d(4, 6, 4, stride=2, padding=1), (1, 4, 5, 5)),
    ("tconv_groups_outpad",
     lambda lib: lib.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
     (2, 6, 4, 5)),
    ("tconv_dilation_nobias",
     lambda lib: lib.ConvTranspose2d(3, 2, 3, stride=3, dilation=2, output_padding=(2, 1),
                                     bias=False), (2, 3, 3, 4)),
    ("linear", lambda lib: lib.Linear(7, 5), (3, 7)),
    ("linear_3d_nobias", lambda lib: lib.Linear(7, 5, bias=False), (2, 4, 7)),
    ("linear_batch1", lambda lib: lib.Linear(1, 3), (1, 1)),
    ("bn1d", lambda lib: lib.BatchNorm1d(5), (8, 5)),
    ("bn1d_3d", lambda lib: lib.BatchNorm1d(5), (4, 5, 6)),
    ("bn2d", lambda lib: lib.BatchNorm2d(3), (4, 3, 5, 6)),
    ("bn2d_cumulative", lambda lib: lib.BatchNorm2d(3, momentum=None), (2, 3, 4, 4)),
    ("bn2d_noaffine", lambda lib: lib.BatchNorm2d(3, affine=False, eps=1e-3), (2, 3, 3, 5)),
    ("bn2d_nobias", lambda lib: lib.BatchNorm2d(3, bias=False), (2, 3, 3, 3)),
    ("bn2d_untracked", lambda lib: lib.BatchNorm2d(3, track_running_stats=False), (3, 3, 2, 2)),
    ("maxpool", lambda lib: lib.MaxPool2d(2), (2, 3, 8, 9)),
    ("maxpool_ceil", lambda lib: lib.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
     (1, 2, 10, 11)),
    ("maxpool_dilated", lambda lib: lib.MaxPool2d((2, 3), stride=(1, 2), dilation=2),
     (2, 2, 9, 10)),
    ("avgpool", lambda lib: lib.AvgPool2d(2), (2, 3, 8, 9)),
    ("avgpool_nopad_count",
     lambda lib: lib.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     (1, 2, 10, 11)),
    ("avgpool_divisor", lambda lib: lib.AvgPool2d(3, 1, 1, divisor_override=4), (1, 2, 5, 5)),
    ("adaptive_global", lambda lib: lib.AdaptiveAvgPool2d(1), (2, 3, 7, 5)),
    ("adaptive_3x5", lambda lib: lib.AdaptiveAvgPool2d((3, 5)), (2, 3, 7, 11)),
    ("adaptive_none", lambda lib: lib.AdaptiveAvgPool2d((None, 2)), (1, 2, 3, 5)),
    ("flatten", lambda lib: lib.Flatten(), (2, 3, 4, 5)),
    ("flatten_0_2", lambda lib: lib.Flatten(0, 2), (2, 3, 4, 5)),
    ("identity", lambda lib: lib.Identity(3, k=4), (2, 3)),
    ("relu", lambda lib: lib.ReLU(), (2, 3, 4, 5)),
    ("leaky_relu", lambda lib: lib.LeakyReLU(0.2), (3, 4)),
    ("prelu_shared", lambda lib: lib.PReLU(), (2, 3, 4, 5)),
    ("prelu_channel", lambda lib: lib.PReLU(3, init=0.1), (2, 3, 4, 5)),
    ("elu", lambda lib: lib.ELU(0.7), (3, 4)),
    ("selu", lambda lib: lib.SELU(), (3, 4)),
    ("gelu", lambda lib: lib.GELU(), (3, 4)),
    ("gelu_tanh", lambda lib: lib.GELU("tanh"), (3, 4)),
    ("sigmoid", lambda lib: lib.Sigmoid(), (3, 4)),
    ("tanh", lambda lib: lib.Tanh(), (3, 4)),
    ("softmax", lambda lib: lib.Softmax(dim=1), (3, 4, 2)),
    ("log_softmax", lambda lib: lib.LogSoftmax(dim=-1), (3, 5)),
    ("dropout_p0", lambda lib: lib.Dropout(0.0), (3, 5)),
]

def run_pair(torch, k_mod, t_mod, x: np.ndarray, train: bool = True, steps: int = 1):
    """Runs both modules ``steps`` times on x, comparing output, gradients and buffers."""
    k_mod.train(train)
    t_mod.train(train)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        kx = kiln.tensor(x, requires_grad=True)
        tx = torch.tensor(x, requires_grad=True)
        k_out, t_out = k_mod(kx), t_mod(tx)
        assert_close(k_out, t_out, what="forward")
        g = rng.standard_normal(tuple(t_out.shape)).astype(x.dtype)
        (k_out * kiln.tensor(g)).sum().backward()
        (t_out * torch.tensor(g)).sum().backward()
        assert_close(kx.grad, tx.grad, what="input grad")
    k_params = dict(k_mod.named_parameters())
    for name, tp in t_mod.named_parameters():
        assert_close(k_params[name].grad, tp.grad, what=f"grad of {name}")
    t_buffers = dict(t_mod.named_buffers())
    for name, kb in k_mod.named_buffers():
        assert_close(kb, t_buffers[name], what=f"buffer {name}")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("build, shape", [pytest.param(b, s, id=n) for n, b, s in LAYER_CASES])
def test_layer_matches_torch(torch, build, shape):
    torch.manual_seed(0)
    k_mod, t_mod = build(nn), build(torch.nn)
    assert repr(k_mod) == repr(t_mod)
    assert list(k_mod.state_dict()) == list(t_mod.state_dict())
    copy_weights(k_mod, t_mod)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    run_pair(torch, k_mod, t_mod, x, train=True, steps=2)
    run_pair(torch, k_mod, t_mod, x, train=False)


def test_conv_transpose_output_size_matches_torch(torch):
    k_mod = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    t_mod = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    copy_weights(k_mod, t_mod)
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32)
    for size in [(8, 10), (7, 9), [1, 2, 8, 9]]:
        assert_close(k_mod(kiln.tensor(x), output_size=size),
                     t_mod(torch.tensor(x), output_size=size))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \(9, 9\)"):
        k_mod(kiln.tensor(x), output_size=(9, 9))
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        k_mod(kiln.tensor(x), output_size=(9,))


def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25)
    x = kiln.ones(200, 100)
    kiln.manual_seed(3)
    y = arr(drop(x))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.02)
    drop.eval()
    assert np.array_equal(arr(drop(x)), arr(x))
    assert repr(drop) == "Dropout(p=0.25, inplace=False)"


def test_softmax_without_dim_uses_the_legacy_choice(torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    for cls in ("Softmax", "LogSoftmax"):
        with pytest.warns(UserWarning, match="Implicit dimension"):
            k_out = getattr(nn, cls)()(kiln.tensor(x))
        with pytest.warns(UserWarning):
            t_out = getattr(torch.nn, cls)()(torch.tensor(x))
        assert_close(k_out, t_out)


# Losses: `lib` is kiln.nn or torch.nn, `T` makes that library's tensor from an array.
LOSS_CASES = [
    ("ce", lambda lib, T: lib.CrossEntropyLoss(), (6, 5), "index"),
    ("ce_weight_smooth_sum",
     lambda lib, T: lib.CrossEntropyLoss(weight=T(np.linspace(0.5, 2, 5, dtype=np.float32)),
                                         label_smoothing=0.1, reduction="sum"), (6, 5), "index"),
    ("ce_ignore_none", lambda lib, T: lib.CrossEntropyLoss(ignore_index=1, reduction="none"),
     (7, 4), "index"),
    ("ce_soft", lambda lib, T: lib.CrossEntropyLoss(label_smoothing=0.2), (5, 4), "probs"),
    ("ce_spatial", lambda lib, T: lib.CrossEntropyLoss(), (2, 3, 4, 5), "index"),
    ("nll", lambda lib, T: lib.NLLLoss(weight=T(np.array([1, 2, 0.5], np.float32))), (6, 3),
     "index"),
    ("nll_ignore_sum", lambda lib, T: lib.NLLLoss(ignore_index=0, reduction="sum"), (6, 3),
     "index"),
    ("mse", lambda lib, T: lib.MSELoss(), (4, 3), "same"),
    ("mse_none", lambda lib, T: lib.MSELoss(reduction="none"), (2, 3, 4), "same"),
    ("l1", lambda lib, T: lib.L1Loss(), (4, 3), "same"),
    ("l1_sum", lambda lib, T: lib.L1Loss(reduction="sum"), (5,), "same"),
    ("bce", lambda lib, T: lib.BCEWithLogitsLoss(), (4, 3), "binary"),
    ("bce_weights",
     lambda lib, T: lib.BCEWithLogitsLoss(weight=T(np.array([0.5, 1, 2], np.float32)),
                                          pos_weight=T(np.array([2, 1, 0.3], np.float32))),
     (4, 3), "binary"),
    ("mm", lambda lib, T: lib.MultiMarginLoss(), (6, 5), "index"),
    ("mm_p2_weight",
     lambda lib, T: lib.MultiMarginLoss(p=2, margin=0.5,
                                        weight=T(np.linspace(1, 2, 5, dtype=np.float32)),
                                        reduction="none"), (6, 5), "index"),
]


def _target(kind: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if kind == "index":
        target_shape = (shape[0],) + shape[2:]
        return rng.integers(0, shape[1], target_shape).astype(np.int64)
    if kind == "probs":
        p = rng.random(shape).astype(np.float32)
        return p / p.sum(1, keepdims=True)
    if kind == "binary":
        return rng.random(shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "build, shape, kind",
    [pytest.param(b, s, k, id=n) for n, b, s, k in LOSS_CASES],
)
def test_loss_matches_torch(torch, build, shape, kind):
    rng = np.random.default_rng(0)
    k_loss, t_loss = build(nn, kiln.tensor), build(torch.nn, torch.tensor)
    assert repr(k_loss) == repr(t_loss)
    assert list(k_loss.state_dict()) == list(t_loss.state_dict())
    x = rng.standard_normal(shape).astype(np.float32)
    target = _target(kind, shape, rng)
    kx, tx = kiln.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    k_out = k_loss(kx, kiln.tensor(target))
    t_out = t_loss(tx, torch.tensor(target))
    assert_close(k_out, t_out, what="loss")
    g = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (k_out * kiln.tensor(g)).sum().backward()
    (t_out * torch.tensor(g)).sum().backward()
    assert_close(kx.grad, tx.grad, what="input grad")


def test_legacy_loss_flags_map_to_reduction():
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert nn.L1Loss(reduce=False).reduction == "none"


# ------------------------------------------------------------------- whole networks
def small_cnn(lib):
    return lib.Sequential(
        lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), lib.BatchNorm2d(16), lib.ReLU(),
        lib.AdaptiveAvgPool2d(1), lib.Flatten(), lib.Linear(16, 10),
    )


def test_small_cnn_forward_backward_and_training_match_torch(torch):
    torch.manual_seed(0)
    k_net, t_net = small_cnn(nn), small_cnn(torch.nn)
    copy_weights(k_net, t_net)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    lr = 0.1
    for _ in range(3):  # three SGD steps keep weights, grads and running stats in lockstep
        k_loss = nn.CrossEntropyLoss()(k_net(kiln.tensor(x)), kiln.tensor(y))
        t_loss = torch.nn.CrossEntropyLoss()(t_net(torch.tensor(x)), torch.tensor(y))
        assert_close(k_loss, t_loss, what="loss")
        k_net.zero_grad()
        t_net.zero_grad()
        k_loss.backward()
        t_loss.backward()
        # The first conv's bias feeds a BatchNorm, so its true gradient is 0 and both
        # libraries return rounding noise: compare it on the scale of the other gradients.
        k_params = dict(k_net.named_parameters())
        largest = max(float(tp.grad.abs().max()) for tp in t_net.parameters())
        for name, tp in t_net.named_parameters():
            assert_close(k_params[name].grad, tp.grad, rtol=2e-4, what=f"grad of {name}",
                         scale=largest * 1e-2)
        with kiln.no_grad():
            for p in k_net.parameters():
                p -= lr * p.grad
        with torch.no_grad():
            for p in t_net.parameters():
                p -= lr * p.grad
    for (name, kv), tv in zip(k_net.state_dict().items(), t_net.state_dict().values()):
        assert_close(kv, tv, rtol=2e-4, what=name)
    k_net.eval()
    t_net.eval()
    assert_close(k_net(kiln.tensor(x)), t_net(torch.tensor(x)), rtol=2e-4, what="eval")


def test_small_module_gradcheck_in_float64():
    kiln.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 2)).double()
    x = kiln.tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)),
                    dtype=kiln.float64, requires_grad=True)
    assert gradcheck(lambda inp: net(inp), [x])


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.Conv2d(0, 4, 3), ValueError, "Conv2d: in_channels must be positive"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels .* divisible by groups"),
        (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, "out_channels .* divisible by groups"),
        (lambda: nn.Conv2d(3, 4, 0), ValueError, "kernel_size must be positive"),
        (lambda: nn.Conv2d(3, 4, 2.5), TypeError, "kernel_size must be an int"),
        (lambda: nn.Conv2d(3, 4, (3, 3, 3)), ValueError, "kernel_size must be an int or a pair"),
        (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, "stride must be positive"),
        (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, "padding must be >= 0"),
        (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, "invalid padding string"),
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), ValueError,
         "not supported for strided"),
        (lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), ValueError, "padding_mode"),
        (lambda: nn.Conv2d(3, 4, 3, dtype=kiln.int64), TypeError, "floating point dtype"),
        (lambda: nn.Conv2d(3, 4, 3, device="cuda"), RuntimeError, "cuda"),
        (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), ValueError,
         'only "zeros" padding mode'),
        (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2), ValueError,
         "output_padding .* must be smaller"),
        (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be positive"),
        (lambda: nn.Linear(3, "4"), TypeError, "Linear: out_features must be an int"),
        (lambda: nn.BatchNorm2d(-2), ValueError, "BatchNorm2d: num_features must be positive"),
        (lambda: nn.BatchNorm1d(3, momentum=2.0), ValueError, "momentum"),
        (lambda: nn.BatchNorm1d(3, eps=-1.0), ValueError, "eps"),
        (lambda: nn.MaxPool2d(0), ValueError, "MaxPool2d: kernel_size must be positive"),
        (lambda: nn.MaxPool2d(2, padding=2), ValueError, "at most half"),
        (lambda: nn.AvgPool2d(3, stride=-1), ValueError, "AvgPool2d: stride must be positive"),
        (lambda: nn.AvgPool2d(3, divisor_override=0), ValueError, "divisor_override"),
        (lambda: nn.AdaptiveAvgPool2d((2, 0)), ValueError, "output_size must be positive"),
        (lambda: nn.AdaptiveAvgPool2d((2, 2, 2)), ValueError, "AdaptiveAvgPool2d"),
        (lambda: nn.Dropout(1.5), ValueError, "between 0 and 1"),
        (lambda: nn.Dropout("0.5"), TypeError, "Dropout: p must be a real number"),
        (lambda: nn.PReLU(0), ValueError, "PReLU: num_parameters must be positive"),
        (lambda: nn.LeakyReLU("0.1"), TypeError, "LeakyReLU: negative_slope"),
        (lambda: nn.GELU("fast"), ValueError, "GELU: approximate"),
        (lambda: nn.Softmax(dim=1.0), TypeError, "Softmax: dim"),
        (lambda: nn.Flatten(1.0), TypeError, "Flatten: start_dim"),
        (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError,
         "CrossEntropyLoss: 'avg' is not a valid value for reduction"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), ValueError, "label_smoothing"),
        (lambda: nn.NLLLoss(weight=np.ones(3)), TypeError, "NLLLoss: weight must be a kiln"),
        (lambda: nn.MultiMarginLoss(p=3), ValueError, "only p == 1 and p == 2"),
        (lambda: nn.MultiMarginLoss(weight=kiln.ones(2, 2)), ValueError, "1D"),
        (lambda: nn.BCEWithLogitsLoss(pos_weight=[1.0]), TypeError, "pos_weight"),
    ],
)
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "module, x, error, match",
    [
        (lambda: nn.BatchNorm2d(3), lambda: kiln.zeros(2, 3, 4), ValueError,
         r"BatchNorm2d: expected 4D input \(got 3D input"),
        (lambda: nn.BatchNorm1d(3), lambda: kiln.zeros(2, 3, 4, 4), ValueError,
         r"BatchNorm1d: expected 2D or 3D input \(got 4D input"),
        (lambda: nn.BatchNorm1d(3), lambda: kiln.zeros(2, 4), ValueError,
         r"BatchNorm1d: input of shape \(2, 4\) has 4 channels, expected num_features=3"),
        (lambda: nn.BatchNorm2d(3), lambda: np.zeros((2, 3, 4, 4)), TypeError, "BatchNorm2d"),
        (lambda: nn.Flatten(), lambda: np.zeros((2, 3)), TypeError, "Flatten"),
        (lambda: nn.Conv2d(3, 4, 3, padding=3, padding_mode="reflect"),
         lambda: kiln.zeros(1, 3, 3, 3), ValueError, "too large for reflect padding"),
    ],
)
def test_bad_forward_input(module, x, error, match):
    with pytest.raises(error, match=match):
        module()(x())


@pytest.mark.parametrize(
    "module, x",
    [
        (lambda: nn.Conv2d(3, 4, 3), lambda: kiln.zeros(1, 5, 8, 8)),
        (lambda: nn.Conv2d(3, 4, 5), lambda: kiln.zeros(1, 3, 4, 4)),
        (lambda: nn.Conv2d(3, 4, 3), lambda: kiln.zeros(3, 8, 8, 2, 1)),
        (lambda: nn.Linear(3, 4), lambda: kiln.zeros(2, 5)),
    ],
)
def test_functional_errors_surface_through_modules(module, x):
    with pytest.raises((ValueError, TypeError)):
        module()(x())
