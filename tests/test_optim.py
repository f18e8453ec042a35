"""kiln.optim: every optimizer and option against torch.optim over 200 training steps,
per-parameter step counts, state_dict round trips, parameter groups and bad input."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import kernels, nn, optim

STEPS = 200

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-6, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.002, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.05, "betas": (0.8, 0.99)}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "eps": 1e-6, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.01}),
    ("Adadelta", {"maximize": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.02, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.05, "momentum_decay": 8e-3}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True,
               "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.05}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True,
               "maximize": True}),
]


def _ids(case: tuple[str, dict]) -> str:
    name, options = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in options.items())


def _kiln_net(dtype: np.dtype, seed: int = 0) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    for p in net.parameters():
        p.data = kiln.tensor((rng.standard_normal(p.shape) * 0.5).astype(dtype))
    x = rng.standard_normal((32, 6)).astype(dtype)
    y = rng.standard_normal((32, 3)).astype(dtype)
    return net, x, y


def _kiln_step(net: nn.Module, opt: optim.Optimizer, x: np.ndarray, y: np.ndarray,
               sign: float) -> None:
    opt.zero_grad()
    (F.mse_loss(net(kiln.tensor(x)), kiln.tensor(y)) * sign).backward()
    opt.step()


def _train_kiln(name: str, options: dict, dtype: np.dtype, steps: int = STEPS) -> nn.Module:
    net, x, y = _kiln_net(dtype)
    opt = getattr(optim, name)(net.parameters(), **options)
    sign = -1.0 if options.get("maximize") else 1.0
    for _ in range(steps):
        _kiln_step(net, opt, x, y, sign)
    return net


def _train_torch(name: str, options: dict, dtype: np.dtype, torch, groups=None):
    net, x, y = _kiln_net(dtype)
    tnet = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    tnet = tnet.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for tp, kp in zip(tnet.parameters(), net.parameters()):
            tp.copy_(torch.from_numpy(kp.detach().numpy()))
    params = groups(list(tnet.parameters())) if groups else tnet.parameters()
    opt = getattr(torch.optim, name)(params, **options)
    sign = -1.0 if options.get("maximize") else 1.0
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(STEPS):
        opt.zero_grad()
        (torch.nn.functional.mse_loss(tnet(tx), ty) * sign).backward()
        opt.step()
    return [p.detach().numpy() for p in tnet.parameters()], opt


def _assert_close(kiln_params, torch_params, rel: float) -> None:
    for i, (k, t) in enumerate(zip(kiln_params, torch_params)):
        k = k.detach().numpy() if isinstance(k, kiln.Tensor) else k
        err = np.abs(k - t).max() / max(np.abs(t).max(), 1e-12)
        assert err < rel, f"parameter {i}: relative error {err:.3g} >= {rel}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_matches_torch_over_200_steps(case):
    torch = pytest.importorskip("torch")
    name, options = case
    for dtype, rel in ((np.float32, 1e-5), (np.float64, 1e-10)):
        net = _train_kiln(name, options, dtype)
        expected, _ = _train_torch(name, options, dtype, torch)
        _assert_close(list(net.parameters()), expected, rel)


GROUP_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9},
     [{"lr": 0.02, "weight_decay": 0.1}, {"momentum": 0.5, "nesterov": True}]),
    ("Adam", {"lr": 0.01}, [{"lr": 0.001, "weight_decay": 0.1}, {"amsgrad": True}]),
    ("AdamW", {"lr": 0.01}, [{"lr": 0.003, "weight_decay": 0.5}, {"betas": (0.8, 0.99)}]),
    ("RMSprop", {"lr": 0.01}, [{"centered": True, "lr": 0.003}, {"momentum": 0.9}]),
    ("Adagrad", {"lr": 0.1}, [{"lr_decay": 0.1}, {"weight_decay": 0.01}]),
]


@pytest.mark.parametrize("case", GROUP_CASES, ids=lambda c: c[0])
def test_param_groups_with_their_own_options_match_torch(case):
    torch = pytest.importorskip("torch")
    name, defaults, overrides = case

    def groups(params):  # first layer (a "backbone") and last layer get different options
        return [{"params": params[:2], **overrides[0]}, {"params": params[2:], **overrides[1]}]

    for dtype, rel in ((np.float32, 1e-5), (np.float64, 1e-10)):
        net, x, y = _kiln_net(dtype)
        opt = getattr(optim, name)(groups(list(net.parameters())), **defaults)
        for _ in range(STEPS):
            _kiln_step(net, opt, x, y, 1.0)
        expected, topt = _train_torch(name, defaults, dtype, torch, groups)
        _assert_close(list(net.parameters()), expected, rel)
        for group, tgroup in zip(opt.param_groups, topt.param_groups):
            assert {k: v for k, v in group.items() if k != "params"} == {
                k: v for k, v in tgroup.items() if k != "params"
            }


@pytest.mark.parametrize("name", ["Adam", "RMSprop", "Adagrad", "SGD"])
def test_parameters_without_grad_are_skipped_and_keep_their_step_count(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(s).astype(np.float32) for s in [(4, 3), (5,), (2, 2)]]
    kp = [kiln.tensor(v, requires_grad=True) for v in values]
    tp = [torch.tensor(v, requires_grad=True) for v in values]
    options = {"lr": 0.01, "momentum": 0.9} if name == "SGD" else {"lr": 0.01}
    kopt = getattr(optim, name)(kp, **options)
    topt = getattr(torch.optim, name)(tp, **options)
    for step in range(30):
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in values]
        for i, g in enumerate(grads):
            skip = (i == 1 and step % 3 == 0) or (i == 2 and step < 10)
            kp[i].grad = None if skip else kiln.tensor(g)
            tp[i].grad = None if skip else torch.tensor(g)
        kopt.step()
        topt.step()
    _assert_close(kp, [t.detach().numpy() for t in tp], 1e-6)
    for k, t in zip(kp, tp):
        kstate, tstate = kopt.state[k], topt.state[t]
        assert set(kstate) == set(tstate)
        for key, value in tstate.items():
            np.testing.assert_allclose(kstate[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-7)
            if key == "step":
                assert kstate[key].dtype == np.float32 and kstate[key].shape == ()


@pytest.mark.parametrize("case", [CASES[3], CASES[8], CASES[12], CASES[15], CASES[19]], ids=_ids)
def test_state_dict_save_and_load_midway_continues_exactly(case):
    name, options = case
    sign = -1.0 if options.get("maximize") else 1.0
    straight = _train_kiln(name, options, np.float32)

    net, x, y = _kiln_net(np.float32)
    opt = getattr(optim, name)(net.parameters(), **options)
    for _ in range(STEPS // 2):
        _kiln_step(net, opt, x, y, sign)
    saved_model = copy.deepcopy({k: v.numpy().copy() for k, v in net.state_dict().items()})
    saved = pickle.loads(pickle.dumps(opt.state_dict()))  # what a checkpoint file holds
    for _ in range(7):  # the original run goes on; the checkpoint must not follow it
        _kiln_step(net, opt, x, y, sign)

    resumed, _, _ = _kiln_net(np.float32, seed=1)
    resumed.load_state_dict({k: kiln.tensor(v) for k, v in saved_model.items()})
    opt2 = getattr(optim, name)(resumed.parameters(), **{**options, "lr": 123.0})
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == options["lr"]
    for _ in range(STEPS - STEPS // 2):
        _kiln_step(resumed, opt2, x, y, sign)
    for a, b in zip(resumed.parameters(), straight.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    # Loading copies the buffers: the loaded dict is not updated by later steps.
    assert all(
        not np.shares_memory(v.numpy(), saved["state"][i][k].numpy())
        for i, s in enumerate(opt2.state.values()) for k, v in s.items()
    )


def test_state_dict_has_torch_layout():
    torch = pytest.importorskip("torch")
    net, x, y = _kiln_net(np.float32)
    opt = optim.Adam([{"params": list(net.parameters())[:2]},
                      {"params": list(net.parameters())[2:], "lr": 0.1}], amsgrad=True)
    _kiln_step(net, opt, x, y, 1.0)
    tparams = [torch.zeros(p.shape, requires_grad=True) for p in net.parameters()]
    topt = torch.optim.Adam([{"params": tparams[:2]}, {"params": tparams[2:], "lr": 0.1}],
                            amsgrad=True)
    for p in tparams:
        p.grad = torch.ones(p.shape)
    topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"] == tsd["param_groups"]
    assert sd["state"].keys() == tsd["state"].keys()
    for i in sd["state"]:
        assert list(sd["state"][i]) == list(tsd["state"][i])
    # A PyTorch checkpoint loads into kiln (tensors become arrays of the parameter's dtype).
    opt.load_state_dict(tsd)
    assert opt.state[list(net.parameters())[0]]["exp_avg"].numpy().tolist() == (
        np.full((16, 6), 0.1, np.float32).tolist()
    )


@pytest.mark.parametrize("name", ["Adadelta", "Adamax", "NAdam", "RAdam"])
def test_new_optimizers_state_dict_matches_torch_and_round_trips(name):
    """The state-dict layout of torch.optim (keys, float32 scalar step and mu_product),
    and a PyTorch state dict loaded midway continues as PyTorch does."""
    torch = pytest.importorskip("torch")
    net, x, y = _kiln_net(np.float64)
    opt = getattr(optim, name)(net.parameters(), lr=0.01)
    tparams = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in net.parameters()]
    topt = getattr(torch.optim, name)(tparams, lr=0.01)
    grads = [np.random.default_rng(i).standard_normal(p.shape) for i, p in enumerate(tparams)]

    def torch_step() -> None:
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt.step()

    for _ in range(3):
        torch_step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["param_groups"] == tsd["param_groups"]
    opt.load_state_dict(pickle.loads(pickle.dumps(tsd)))
    with torch.no_grad():
        for p, t in zip(net.parameters(), tparams):
            p.data = kiln.tensor(t.detach().numpy().copy())
    for i, state in enumerate(opt.state_dict()["state"].values()):
        assert list(state) == list(tsd["state"][i])
        for key in ("step", "mu_product"):
            if key in state:
                assert state[key].dtype == np.float32 and state[key].shape == ()
    for p, g in zip(net.parameters(), grads):
        p.grad = kiln.tensor(g)
    opt.step()
    torch_step()
    _assert_close(list(net.parameters()), [t.detach().numpy() for t in tparams], 1e-12)


def test_zero_grad_and_closure():
    net, x, y = _kiln_net(np.float32)
    opt = optim.SGD(net.parameters(), lr=0.1)

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(net(kiln.tensor(x)), kiln.tensor(y))
        loss.backward()
        return loss

    before = closure().item()
    assert opt.step(closure).item() == pytest.approx(before)
    assert closure().item() < before
    grads = [p.grad for p in net.parameters()]
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.numpy().any() for p, g in zip(net.parameters(), grads))
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    opt.step()  # no gradients: nothing to do


def test_add_param_group_and_frozen_parameters():
    a = kiln.zeros(3, requires_grad=True)
    frozen = kiln.zeros(2)  # requires_grad=False is allowed; it never gets a gradient
    opt = optim.SGD([a, frozen], lr=0.5, momentum=0.9)
    b = kiln.zeros(4, requires_grad=True)
    opt.add_param_group({"params": b, "lr": 0.1})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.9
    a.grad, b.grad = kiln.ones(3), kiln.ones(4)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), -0.5)
    np.testing.assert_allclose(b.detach().numpy(), -0.1, rtol=1e-6)
    assert "momentum_buffer" in opt.state[b] and frozen not in opt.state
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_strided_parameter_is_updated_in_place():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    p = nn.Parameter(kiln.from_numpy(base.T))  # a transposed view: not C-contiguous
    opt = optim.Adam([p], lr=0.1)
    p.grad = kiln.ones(4, 3)
    opt.step()
    np.testing.assert_allclose(base.T, np.arange(12, dtype=np.float32).reshape(3, 4).T - 0.1,
                               rtol=1e-6)


def test_read_only_parameter_raises_before_any_update():
    p = nn.Parameter(kiln.from_numpy(np.broadcast_to(np.float32(1.0), (3, 2))))
    opt = optim.Adam([p])
    p.grad = kiln.ones(3, 2)
    with pytest.raises(ValueError, match="adam_step"):
        opt.step()
    assert opt.state[p]["step"].item() == 0


def test_float64_and_float32_in_one_group():
    a = kiln.zeros(5, dtype=np.float64, requires_grad=True)
    b = kiln.zeros(5, requires_grad=True)
    opt = optim.RMSprop([a, b], lr=0.01, momentum=0.9, centered=True)
    a.grad, b.grad = kiln.ones(5, dtype=np.float64), kiln.ones(5)
    opt.step()
    assert a.dtype == np.float64 and b.dtype == np.float32
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
    assert opt.state[a]["square_avg"].dtype == np.float64


def test_large_group_runs_threaded_and_matches_small_pieces():
    rng = np.random.default_rng(5)
    shapes = [(300, 301), (7,), (1000, 97), (1,), (64, 3, 3, 3)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    together = [kiln.tensor(v, requires_grad=True) for v in values]
    alone = [kiln.tensor(v, requires_grad=True) for v in values]
    opt = optim.Adam(together, lr=0.01, amsgrad=True)
    opts = [optim.Adam([p], lr=0.01, amsgrad=True) for p in alone]
    for _ in range(3):
        for p, q, g in zip(together, alone, grads):
            p.grad, q.grad = kiln.tensor(g), kiln.tensor(g)
        opt.step()
        for o in opts:
            o.step()
    for p, q in zip(together, alone):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_repr_and_exports():
    opt = optim.AdamW([kiln.zeros(2, requires_grad=True)])
    text = repr(opt)
    assert text.startswith("AdamW (") and "weight_decay: 0.01" in text
    assert opt.defaults["decoupled_weight_decay"] is True
    assert optim.lr_scheduler.StepLR is not None
    assert set(optim.__all__) >= {"SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Optimizer"}


# ------------------------------------------------------------------ bad input
P = [kiln.zeros(2, requires_grad=True)]

BAD_OPTIONS = [
    ("SGD", {"lr": -0.1}, "Invalid learning rate"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum"),
    ("SGD", {"weight_decay": -1}, "Invalid weight_decay"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay"),
    ("Adagrad", {"eps": -1e-3}, "Invalid epsilon"),
    ("Adagrad", {"initial_accumulator_value": -1}, "initial_accumulator_value"),
    ("RMSprop", {"alpha": -0.1}, "Invalid alpha"),
    ("RMSprop", {"lr": float("nan")}, "Invalid learning rate"),
    ("Adam", {"betas": (1.0, 0.999)}, "beta parameter at index 0"),
    ("Adam", {"betas": (0.9, -0.1)}, "beta parameter at index 1"),
    ("Adam", {"betas": (0.9,)}, "betas must be a pair"),
    ("AdamW", {"eps": -1.0}, "Invalid epsilon"),
    ("AdamW", {"lr": -1e-3}, "AdamW: Invalid learning rate"),
    ("Adadelta", {"rho": 1.5}, "Adadelta: Invalid rho value"),
    ("Adadelta", {"eps": -1.0}, "Invalid epsilon"),
    ("Adamax", {"betas": (0.9, 1.0)}, "Adamax: Invalid beta parameter at index 1"),
    ("NAdam", {"momentum_decay": -1.0}, "NAdam: Invalid momentum_decay value"),
    ("RAdam", {"weight_decay": -1.0}, "RAdam: Invalid weight_decay"),
]


@pytest.mark.parametrize("name,options,message", BAD_OPTIONS)
def test_bad_options_raise(name, options, message):
    with pytest.raises(ValueError, match=message):
        getattr(optim, name)(P, **options)
    with pytest.raises(ValueError, match=message):  # also in a group of their own
        getattr(optim, name)([{"params": P, **options}])


def test_bad_params_raise():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.Adam(kiln.zeros(2, requires_grad=True))
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.Adam([np.zeros(2)])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.Adam([{"params": set(P)}])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([P[0] * 2])
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.Adam([kiln.zeros(2, dtype=np.int64)])
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.Adam([kiln.zeros(2, dtype=np.float16)])
    with pytest.raises(ValueError, match="same parameter twice"):
        optim.Adam([P[0], P[0]])
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.Adam([{"params": P}, {"params": P, "lr": 0.1}])
    with pytest.raises(ValueError, match="'params' entry"):
        optim.Adam([{"lr": 0.1}])
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.SGD(P, lr="fast")


def test_bad_state_dict_raises():
    opt = optim.Adam(P)
    P[0].grad = kiln.ones(2)
    opt.step()
    other = optim.Adam([kiln.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="has shape"):
        other.load_state_dict(opt.state_dict())
    two = optim.Adam([{"params": [kiln.zeros(2, requires_grad=True)]},
                      {"params": [kiln.zeros(2, requires_grad=True)]}])
    with pytest.raises(ValueError, match="parameter groups"):
        two.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_bad_gradient_raises_before_any_update():
    a, b = kiln.zeros(3, requires_grad=True), kiln.zeros(2, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = kiln.ones(3)
    b._grad = kiln.ones(2, dtype=np.float64)  # bypasses the shape-only setter check
    with pytest.raises(TypeError, match=r"adam_step: expected grads\[1\] of dtype float32"):
        opt.step()
    assert not a.detach().numpy().any() and opt.state[a]["step"].item() == 0


def test_kernels_check_their_lists():
    p, g = np.zeros(4, np.float32), np.ones(4, np.float32)
    m, v, step = np.zeros(4, np.float32), np.zeros(4, np.float32), np.zeros((), np.float32)
    args = (1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, False)
    kernels.adam_step([p], [g], [m], [v], [], [step], *args)
    assert step == 1 and p[0] == pytest.approx(-1e-3)
    with pytest.raises(ValueError, match="got 1 params but 0 grads"):
        kernels.adam_step([p], [], [m], [v], [], [step], *args)
    with pytest.raises(ValueError, match=r"exp_avgs\[0\] has shape \(3,\)"):
        kernels.adam_step([p], [g], [np.zeros(3, np.float32)], [v], [], [step], *args)
    with pytest.raises(TypeError, match=r"params\[0\] to be a NumPy array, got list"):
        kernels.adam_step([[0.0]], [g], [m], [v], [], [step], *args)
    with pytest.raises(TypeError, match="state_steps"):
        kernels.adam_step([p], [g], [m], [v], [], [np.zeros((), np.float64)], *args)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        kernels.adam_step([np.zeros((4, 4), np.float32).T], [np.ones((4, 4), np.float32)],
                          [np.zeros((4, 4), np.float32)], [np.zeros((4, 4), np.float32)], [],
                          [step], *args)
    with pytest.raises(ValueError, match="beta1"):
        kernels.adam_step([p], [g], [m], [v], [], [step], 1e-3, 1.0, 0.999, 1e-8, 0.0,
                          False, False, False)
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(4, np.float32)
        ro.flags.writeable = False
        kernels.sgd_step([ro], [g], [], 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] are the same array"):
        kernels.sgd_step([p, p], [g, g], [], 0.1, 0.0, 0.0, 0.0, False, False)
    assert step == 1  # none of the failed calls counted a step
    bufs = kernels.sgd_step([p], [g], [None], 0.1, 0.9, 0.5, 0.0, False, False)
    np.testing.assert_array_equal(bufs[0], g)  # the first buffer is the gradient, undampened
