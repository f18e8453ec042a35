"""kiln.optim.lr_scheduler: every PyTorch scheduler's sequence against torch (300 steps, several
param groups, a state_dict save and load into a fresh scheduler midway), the lecture's schedules
against their closed forms, and bad input."""

import math
import pickle
import warnings

import numpy as np
import pytest

import kiln
from kiln.optim import SGD, Adagrad, Adam
from kiln.optim import lr_scheduler as ks

STEPS = 300
RESUME_AT = 137
GROUP_LRS = (0.1, 0.03, 0.5)


def _kiln_params(n: int) -> list:
    return [kiln.zeros(2, requires_grad=True) for _ in range(n)]


def _groups(params: list, lrs: tuple) -> list:
    return [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]


def _kiln_optimizer(kind: str, lrs: tuple):
    groups = _groups(_kiln_params(len(lrs)), lrs)
    if kind == "adam":
        return Adam(groups, lr=lrs[0])
    return SGD(groups, lr=lrs[0], momentum=0.9)


def _torch_optimizer(torch, kind: str, lrs: tuple):
    groups = _groups([torch.nn.Parameter(torch.zeros(2)) for _ in lrs], lrs)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _snapshot(optimizer, scheduler) -> list:
    """Per group: the lr the scheduler reports, the group's lr and its momentum or beta1."""
    out = [float(lr) for lr in scheduler.get_last_lr()]
    for group in optimizer.param_groups:
        out.append(float(group["lr"]))
        out.append(float(group["betas"][0] if "betas" in group else group["momentum"]))
    return out


def _metric(t: int) -> float:
    """A loss-like curve with plateaus and bumps, for ReduceLROnPlateau."""
    return 1.0 / (1 + t // 17) + 0.05 * math.sin(t * 0.7) + (0.2 if t % 41 == 0 else 0.0)


def _advance(optimizer, scheduler, t: int, plateau: bool) -> None:
    optimizer.step()
    if plateau:
        scheduler.step(_metric(t))
    else:
        scheduler.step()


def _run(make_optimizer, make_scheduler, plateau: bool, resume_at: int | None = None,
         steps: int = STEPS) -> list:
    optimizer = make_optimizer()
    scheduler = make_scheduler(optimizer)
    seq = [_snapshot(optimizer, scheduler)]
    for t in range(1, steps + 1):
        _advance(optimizer, scheduler, t, plateau)
        seq.append(_snapshot(optimizer, scheduler))
        if t == resume_at:
            saved_opt = pickle.loads(pickle.dumps(optimizer.state_dict()))
            saved = pickle.loads(pickle.dumps(scheduler.state_dict()))
            # PyTorch's order: build the scheduler, then load the optimizer, then the scheduler
            optimizer = make_optimizer()
            scheduler = make_scheduler(optimizer)
            optimizer.load_state_dict(saved_opt)
            scheduler.load_state_dict(saved)
    return seq


def _both(torch) -> tuple:
    """(scheduler module, optimizer factory) for torch, then for kiln."""
    return ((torch.optim.lr_scheduler, lambda: _torch_optimizer(torch, "sgd", GROUP_LRS)),
            (ks, lambda: _kiln_optimizer("sgd", GROUP_LRS)))


def _assert_same(got: list, want: list, rel: float = 0.0) -> None:
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want)):
        for a, b in zip(g, w, strict=True):
            assert abs(a - b) <= rel * max(abs(b), 1e-300), f"step {t}: kiln {g} torch {w}"


# (name, optimizer kind, number of groups, factory(module, optimizer) -> scheduler, plateau)
class _Scaled:
    """A callable object with state: its attributes travel in the state_dict."""

    def __init__(self, base: float) -> None:
        self.base = base

    def __call__(self, epoch: int) -> float:
        return self.base ** epoch


CASES = [
    ("step", "sgd", 3, lambda m, o: m.StepLR(o, step_size=7, gamma=0.5), False),
    ("step_every", "sgd", 1, lambda m, o: m.StepLR(o, 1, gamma=0.97), False),
    ("multistep", "sgd", 3, lambda m, o: m.MultiStepLR(o, [30, 80, 80, 150], gamma=0.3), False),
    ("exponential", "adam", 2, lambda m, o: m.ExponentialLR(o, 0.98), False),
    ("cosine", "sgd", 3, lambda m, o: m.CosineAnnealingLR(o, T_max=50, eta_min=1e-4), False),
    ("cosine_long", "sgd", 1, lambda m, o: m.CosineAnnealingLR(o, 300), False),
    ("cosine_frac", "sgd", 2, lambda m, o: m.CosineAnnealingLR(o, 37.5, eta_min=0.01), False),
    ("linear_up", "sgd", 3, lambda m, o: m.LinearLR(o, 0.1, 1.0, total_iters=40), False),
    ("linear_down", "sgd", 1, lambda m, o: m.LinearLR(o, 1.0, 0.05, total_iters=100), False),
    ("polynomial", "sgd", 3, lambda m, o: m.PolynomialLR(o, total_iters=120, power=2.0), False),
    ("polynomial_sqrt", "sgd", 1, lambda m, o: m.PolynomialLR(o, 250, power=0.5), False),
    ("lambda", "sgd", 3, lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e), False),
    ("lambda_list", "sgd", 3, lambda m, o: m.LambdaLR(
        o, [lambda e: 1 / (1 + e), _Scaled(0.99), lambda e: 0.5 if e > 100 else 1.0]), False),
    ("multiplicative", "sgd", 2, lambda m, o: m.MultiplicativeLR(o, lambda e: 0.99), False),
    ("constant", "sgd", 3, lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=20), False),
    ("cyclic_tri", "sgd", 3, lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=20), False),
    ("cyclic_tri2", "sgd", 2, lambda m, o: m.CyclicLR(
        o, [0.01, 0.002], [0.1, 0.05], step_size_up=15, step_size_down=25,
        mode="triangular2"), False),
    ("cyclic_exp", "adam", 2, lambda m, o: m.CyclicLR(
        o, 0.001, 0.006, step_size_up=10, mode="exp_range", gamma=0.99), False),
    ("cyclic_fn", "sgd", 1, lambda m, o: m.CyclicLR(
        o, 0.001, 0.01, 12, scale_fn=lambda x: 1 / (1 + x), scale_mode="iterations"), False),
    ("cyclic_float", "sgd", 1, lambda m, o: m.CyclicLR(
        o, 0.01, 0.1, step_size_up=7.5, step_size_down=12.5), False),
    ("cyclic_nomom", "sgd", 2, lambda m, o: m.CyclicLR(
        o, 0.01, 0.1, 30, cycle_momentum=False), False),
    ("onecycle_cos", "sgd", 3, lambda m, o: m.OneCycleLR(o, max_lr=0.5, total_steps=STEPS),
     False),
    ("onecycle_linear", "adam", 2, lambda m, o: m.OneCycleLR(
        o, [0.01, 0.02], epochs=10, steps_per_epoch=30, anneal_strategy="linear",
        pct_start=0.25), False),
    ("onecycle_three", "sgd", 2, lambda m, o: m.OneCycleLR(
        o, 1.0, total_steps=STEPS, three_phase=True, div_factor=10.0,
        final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9), False),
    ("warm_restarts", "sgd", 3, lambda m, o: m.CosineAnnealingWarmRestarts(
        o, T_0=10, T_mult=2, eta_min=1e-3), False),
    ("warm_restarts_t1", "sgd", 1, lambda m, o: m.CosineAnnealingWarmRestarts(o, 25), False),
    ("sequential", "sgd", 3, lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, 0.1, total_iters=20), m.CosineAnnealingLR(o, 200)],
        milestones=[20]), False),
    ("sequential3", "sgd", 2, lambda m, o: m.SequentialLR(
        o, [m.ConstantLR(o, 0.5, 10), m.ExponentialLR(o, 0.99), m.StepLR(o, 30, 0.5)],
        milestones=[10, 100]), False),
    ("chained", "sgd", 3, lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, 0.99)]), False),
    ("chained_cos", "adam", 1, lambda m, o: m.ChainedScheduler(
        [m.LinearLR(o, 0.2, total_iters=15), m.CosineAnnealingLR(o, 60, 1e-3)], o), False),
    ("plateau_min", "sgd", 3, lambda m, o: m.ReduceLROnPlateau(o, patience=3), True),
    ("plateau_max_abs", "sgd", 2, lambda m, o: m.ReduceLROnPlateau(
        o, mode="max", factor=0.5, patience=2, threshold=0.01, threshold_mode="abs",
        cooldown=4, min_lr=[0.01, 0.001]), True),
    ("plateau_cooldown", "adam", 1, lambda m, o: m.ReduceLROnPlateau(
        o, factor=0.7, patience=0, cooldown=2, min_lr=1e-3, eps=1e-3), True),
]


@pytest.mark.parametrize("name,kind,ngroups,factory,plateau", CASES, ids=[c[0] for c in CASES])
def test_sequence_matches_torch_with_resume(name, kind, ngroups, factory, plateau):
    torch = pytest.importorskip("torch")
    lrs = GROUP_LRS[:ngroups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = _run(lambda: _torch_optimizer(torch, kind, lrs),
                    lambda o: factory(torch.optim.lr_scheduler, o), plateau)
    straight = _run(lambda: _kiln_optimizer(kind, lrs), lambda o: factory(ks, o), plateau)
    resumed = _run(lambda: _kiln_optimizer(kind, lrs), lambda o: factory(ks, o), plateau,
                   resume_at=RESUME_AT)
    _assert_same(straight, want)
    _assert_same(resumed, want)


def _kiln_vs_torch(torch, build, steps: int, drive) -> None:
    """The same schedule on torch and kiln, 3 param groups; drive(optimizer, scheduler, t) makes
    step t after optimizer.step()."""
    sequences = []
    for module, make in _both(torch):
        optimizer = make()
        scheduler = build(module, optimizer)
        seq = [_snapshot(optimizer, scheduler)]
        for t in range(steps):
            optimizer.step()
            drive(optimizer, scheduler, t)
            seq.append(_snapshot(optimizer, scheduler))
        sequences.append(seq)
    _assert_same(sequences[1], sequences[0])


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_fractional_epochs_match_torch(t_mult):
    torch = pytest.importorskip("torch")
    _kiln_vs_torch(torch, lambda m, o: m.CosineAnnealingWarmRestarts(o, 4, t_mult, 0.001),
                   280, lambda o, s, t: s.step(t // 7 + (t % 7) / 7))


def test_warm_restarts_places_exact_period_boundaries():
    # epoch 121 starts the 6th period of T_0=1, T_mult=3 (1 + 3 + 9 + 27 + 81 = 121): full lr
    optimizer = _kiln_optimizer("sgd", (0.1,))
    scheduler = ks.CosineAnnealingWarmRestarts(optimizer, T_0=1, T_mult=3)
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step(121)
    assert scheduler.T_i == 243 and scheduler.T_cur == 0
    assert scheduler.get_last_lr() == [0.1]


def _step_deprecated(epochs):
    def drive(optimizer, scheduler, t):
        with pytest.warns(UserWarning, match="deprecated"):
            scheduler.step(epochs[t])
    return drive


@pytest.mark.parametrize("name,factory", [
    ("step", lambda m, o: m.StepLR(o, 5, 0.5)),
    ("multistep", lambda m, o: m.MultiStepLR(o, [3, 9, 9], 0.5)),
    ("exponential", lambda m, o: m.ExponentialLR(o, 0.9)),
    ("cosine", lambda m, o: m.CosineAnnealingLR(o, 12, 0.01)),
    ("linear", lambda m, o: m.LinearLR(o, 0.2, 0.9, 8)),
    ("constant", lambda m, o: m.ConstantLR(o, 0.5, 6)),
    ("polynomial", lambda m, o: m.PolynomialLR(o, 10, 2.0)),
    ("lambda", lambda m, o: m.LambdaLR(o, lambda e: 1 / (1 + e))),
])
def test_deprecated_epoch_argument_matches_torch(name, factory):
    torch = pytest.importorskip("torch")
    epochs = (1, 2, 5, 4, 9, 11, 30, 3)
    _kiln_vs_torch(torch, factory, len(epochs), _step_deprecated(epochs))


def test_resume_with_last_epoch_matches_torch():
    torch = pytest.importorskip("torch")

    def build(module, optimizer):
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        return module.CosineAnnealingLR(optimizer, T_max=30, last_epoch=12)

    _kiln_vs_torch(torch, build, 50, lambda o, s, t: s.step())


def test_outside_lr_change_carries_on_like_torch():
    torch = pytest.importorskip("torch")

    def drive(optimizer, scheduler, t):
        if t == 17:
            optimizer.param_groups[1]["lr"] *= 3
        scheduler.step()

    _kiln_vs_torch(torch, lambda m, o: m.ChainedScheduler(
        [m.CosineAnnealingLR(o, 40), m.MultiStepLR(o, [25], 0.5)]), 60, drive)


@pytest.mark.parametrize("kind,factory", [
    ("sgd", lambda m, o: m.OneCycleLR(o, [0.05, 0.02], total_steps=60)),
    ("adam", lambda m, o: m.CyclicLR(o, 0.001, 0.02, step_size_up=7, mode="triangular2")),
    ("sgd", lambda m, o: m.CosineAnnealingWarmRestarts(o, 9, 2)),
], ids=["onecycle_sgd", "cyclic_adam", "warm_restarts_sgd"])
def test_optimizer_follows_the_schedule_like_torch(kind, factory):
    # the scheduled lr and momentum/beta1 reach the update: 60 steps of a quadratic bowl
    torch = pytest.importorskip("torch")
    start = np.linspace(-1.0, 1.0, 10, dtype=np.float32).reshape(2, 5)
    scale = np.linspace(0.5, 3.0, 10, dtype=np.float32).reshape(2, 5)
    kp = [kiln.tensor(row.copy(), requires_grad=True) for row in start]
    tp = [torch.nn.Parameter(torch.tensor(row.copy())) for row in start]
    opts = []
    for params, lib in ((kp, kiln.optim), (tp, torch.optim)):
        groups = [{"params": [params[0]], "lr": 0.01}, {"params": [params[1]], "lr": 0.02}]
        opts.append(lib.Adam(groups) if kind == "adam" else lib.SGD(groups, lr=0.01, momentum=0.9))
    kopt, topt = opts
    ksched, tsched = factory(ks, kopt), factory(torch.optim.lr_scheduler, topt)
    kc = [kiln.tensor(row) for row in scale]
    tc = [torch.tensor(row) for row in scale]
    for _ in range(60):
        kopt.zero_grad()
        sum(((p - 0.3) * (p - 0.3) * c).sum() for p, c in zip(kp, kc)).backward()
        kopt.step()
        ksched.step()
        topt.zero_grad()
        sum(((p - 0.3) * (p - 0.3) * c).sum() for p, c in zip(tp, tc)).backward()
        topt.step()
        tsched.step()
    for a, b in zip(kp, tp):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The lecture's schedules


def _kiln_sequence(scheduler_factory, lrs=GROUP_LRS, steps=STEPS, kind="sgd", metric=False):
    optimizer = _kiln_optimizer(kind, lrs)
    scheduler = scheduler_factory(optimizer)
    seq = [scheduler.get_last_lr()]
    for t in range(1, steps + 1):
        _advance(optimizer, scheduler, t, metric)
        seq.append(scheduler.get_last_lr())
        assert [g["lr"] for g in optimizer.param_groups] == seq[-1]
    return seq


def _sgdr(t: int, t0: int, mult: int) -> float:
    """cos(pi T_cur / T_i) of SGDR at epoch t."""
    start, length = 0, t0
    while t >= start + length:
        start, length = start + length, length * mult
    return math.cos(math.pi * (t - start) / length)


@pytest.mark.parametrize("name,factory,formula", [
    ("step", lambda o: ks.StepLR(o, 7, 0.5), lambda t: 0.5 ** (t // 7)),
    ("multistep", lambda o: ks.MultiStepLR(o, [30, 80, 80], 0.3),
     lambda t: 0.3 ** ((t >= 30) + 2 * (t >= 80))),
    ("exponential", lambda o: ks.ExponentialLR(o, 0.98), lambda t: 0.98 ** t),
    ("cosine", lambda o: ks.CosineAnnealingLR(o, 50),
     lambda t: (1 + math.cos(math.pi * t / 50)) / 2),
    ("linear", lambda o: ks.LinearLR(o, 0.1, 0.6, 40), lambda t: 0.1 + 0.5 * min(t, 40) / 40),
    ("constant", lambda o: ks.ConstantLR(o, 0.25, 20), lambda t: 0.25 if t < 20 else 1.0),
    ("polynomial", lambda o: ks.PolynomialLR(o, 120, 2.0), lambda t: (1 - min(t, 120) / 120) ** 2),
    ("warm_restarts", lambda o: ks.CosineAnnealingWarmRestarts(o, 10, 2),
     lambda t: (1 + _sgdr(t, 10, 2)) / 2),
    ("lambda", lambda o: ks.LambdaLR(o, lambda t: 1 / (1 + t)), lambda t: 1 / (1 + t)),
])
def test_recursive_schedules_follow_their_closed_forms(name, factory, formula):
    # needs no torch: the recursive updates stay within rounding of the textbook formulas
    seq = _kiln_sequence(factory)
    want = [[lr * formula(t) for lr in GROUP_LRS] for t in range(STEPS + 1)]
    for t, (got, ref) in enumerate(zip(seq, want)):
        for a, b in zip(got, ref):
            assert abs(a - b) <= 1e-12 * abs(b) + 1e-15, f"{name} step {t}: {got} vs {ref}"


@pytest.mark.parametrize("k", [0.0, 0.01, 0.5])
def test_inverse_time(k):
    seq = _kiln_sequence(lambda o: ks.InverseTimeLR(o, k))
    want = [[lr / (1 + k * t) for lr in GROUP_LRS] for t in range(STEPS + 1)]
    _assert_same(seq, want, rel=1e-15)


@pytest.mark.parametrize("warmup_steps", [0, 1, 10])
def test_inverse_sqrt(warmup_steps):
    seq = _kiln_sequence(lambda o: ks.InverseSqrtLR(o, warmup_steps=warmup_steps))
    w = warmup_steps
    want = []
    for t in range(STEPS + 1):
        n = t + 1
        factor = 1 / math.sqrt(n) if w == 0 else min(n / w, math.sqrt(w) / math.sqrt(n))
        want.append([lr * factor for lr in GROUP_LRS])
    _assert_same(seq, want, rel=1e-15)
    assert seq[0] == list(GROUP_LRS) if w <= 1 else seq[w - 1] == list(GROUP_LRS)
    if w == 1:
        _assert_same(seq, _kiln_sequence(lambda o: ks.InverseSqrtLR(o)), rel=0)


@pytest.mark.parametrize("name,kind,factory,metric", [
    ("step", "sgd", lambda o: ks.StepLR(o, 20, 0.5), False),
    ("cosine", "sgd", lambda o: ks.CosineAnnealingLR(o, 100, 1e-4), False),
    ("onecycle", "adam", lambda o: ks.OneCycleLR(o, 0.05, total_steps=STEPS), False),
    ("sequential", "sgd", lambda o: ks.SequentialLR(
        o, [ks.ConstantLR(o, 0.5, 10), ks.ExponentialLR(o, 0.99)], [30]), False),
    ("plateau", "sgd", lambda o: ks.ReduceLROnPlateau(o, patience=2), True),
])
@pytest.mark.parametrize("steps", [0, 1, 25])
def test_warmup_ramps_from_zero_then_runs_the_schedule_from_its_step_0(
        name, kind, factory, metric, steps):
    total = STEPS - steps if name == "onecycle" else STEPS
    reference = _kiln_sequence(factory, kind=kind, steps=total, metric=metric)
    seq = _kiln_sequence(lambda o: ks.warmup(factory(o), steps), kind=kind, steps=total + steps,
                         metric=metric)
    if metric:  # the wrapped scheduler sees the metrics from its own step 1 on
        reference = _kiln_sequence_shifted_plateau(factory, kind, total, steps)
    ramp = [[lr * t / steps for lr in reference[0]] for t in range(steps)]
    _assert_same(seq, ramp + reference, rel=0)


def _kiln_sequence_shifted_plateau(factory, kind, total, shift):
    optimizer = _kiln_optimizer(kind, GROUP_LRS)
    scheduler = factory(optimizer)
    seq = [scheduler.get_last_lr()]
    for t in range(1, total + 1):
        optimizer.step()
        scheduler.step(_metric(t + shift))
        seq.append(scheduler.get_last_lr())
    return seq


def test_warmup_momentum_and_state_dict_midway():
    def make(o):
        return ks.warmup(ks.OneCycleLR(o, [0.1, 0.2], total_steps=100), 10)

    straight = _run(lambda: _kiln_optimizer("sgd", GROUP_LRS[:2]), make, False, steps=110)
    resumed = _run(lambda: _kiln_optimizer("sgd", GROUP_LRS[:2]), make, False, resume_at=6,
                   steps=110)
    _assert_same(resumed, straight, rel=0)
    # momentum holds the 1cycle start value (max_momentum) during the warm-up
    assert all(row[3] == 0.95 and row[5] == 0.95 for row in straight[:11])


def test_scale_lr_for_batch_size():
    assert ks.scale_lr_for_batch_size(0.1, 256, 1024) == pytest.approx(0.4, rel=1e-15)
    assert ks.scale_lr_for_batch_size(0.1, 256, 64) == pytest.approx(0.025, rel=1e-15)
    assert ks.scale_lr_for_batch_size(0.5, 128, 128) == 0.5


# ---------------------------------------------------------------------------------------------
# API details


def test_state_dict_is_plain_data_without_optimizer_or_functions():
    optimizer = _kiln_optimizer("sgd", GROUP_LRS)
    scheduler = ks.LambdaLR(optimizer, [lambda e: 1.0, _Scaled(0.9), _Scaled(0.8)])
    state = scheduler.state_dict()
    assert "optimizer" not in state
    assert state["lr_lambdas"] == [None, {"base": 0.9}, {"base": 0.8}]
    pickle.dumps(state)
    fresh = ks.LambdaLR(_kiln_optimizer("sgd", GROUP_LRS), [lambda e: 1.0, _Scaled(0.5),
                                                            _Scaled(0.5)])
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[1].base == 0.9 and fresh.lr_lambdas[2].base == 0.8
    cyclic = ks.CyclicLR(optimizer, 0.01, 0.1, scale_fn=lambda x: 1.0)
    assert cyclic.state_dict()["_scale_fn_custom"] is None
    pickle.dumps(ks.SequentialLR(optimizer, [ks.StepLR(optimizer, 3), ks.ExponentialLR(
        optimizer, 0.9)], [5]).state_dict())


def test_get_lr_outside_step_warns_and_step_order_warning():
    optimizer = _kiln_optimizer("sgd", GROUP_LRS)
    scheduler = ks.StepLR(optimizer, 3)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()
    with pytest.warns(UserWarning, match="before optimizer.step"):
        scheduler.step()
    optimizer = _kiln_optimizer("sgd", GROUP_LRS)
    scheduler = ks.StepLR(optimizer, 3)
    optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()
        scheduler.step()


def test_plateau_accepts_tensor_metric_and_ignores_nan():
    optimizer = _kiln_optimizer("sgd", (0.1,))
    scheduler = ks.ReduceLROnPlateau(optimizer, patience=0)
    scheduler.step(kiln.tensor(1.0))
    scheduler.step(float("nan"))
    assert scheduler.get_last_lr() == [pytest.approx(0.01)]
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        scheduler.step("loss")


def test_onecycle_refuses_steps_past_total():
    optimizer = _kiln_optimizer("sgd", (0.1,))
    scheduler = ks.OneCycleLR(optimizer, 0.1, total_steps=3)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError, match="OneCycleLR: stepped 4 times but total_steps is 3"):
        scheduler.step()


def test_onecycle_zero_length_phase_uses_its_end_value():
    # pct_start * total_steps == 1: PyTorch divides 0 by 0 at step 0; kiln starts at max_lr
    optimizer = _kiln_optimizer("sgd", (0.1,))
    scheduler = ks.OneCycleLR(optimizer, 0.1, total_steps=10, pct_start=0.1)
    assert scheduler.get_last_lr() == [pytest.approx(0.1)]


# ---------------------------------------------------------------------------------------------
# Bad input


def _o():
    return _kiln_optimizer("sgd", GROUP_LRS[:2])


def _group_added_later():
    o = _o()
    scheduler = ks.LambdaLR(o, lambda e: 1.0)
    o.add_param_group({"params": _kiln_params(1), "lr": 0.1})
    o.step()
    scheduler.step()


def _sequential(milestones):
    o = _o()
    return ks.SequentialLR(o, [ks.StepLR(o, 3), ks.StepLR(o, 4), ks.StepLR(o, 5)], milestones)


def _stepped(scheduler):
    scheduler.optimizer.step()
    scheduler.step()
    return scheduler


def _plateau_in(container):
    o = _o()
    return container([ks.ReduceLROnPlateau(o)], o)


BAD = [
    (lambda: ks.StepLR(object(), 3), TypeError, "StepLR: object is not an Optimizer"),
    (lambda: ks.CosineAnnealingLR([1.0], 3), TypeError, "CosineAnnealingLR: list is not an Op"),
    (lambda: ks.ReduceLROnPlateau(None), TypeError, "ReduceLROnPlateau: NoneType is not an"),
    (lambda: ks.StepLR(_o(), 0), ValueError, "StepLR: step_size must be positive"),
    (lambda: ks.StepLR(_o(), -2), ValueError, "StepLR: step_size"),
    (lambda: ks.StepLR(_o(), 2.5), TypeError, "StepLR: step_size must be an int"),
    (lambda: ks.StepLR(_o(), 3, gamma=0), ValueError, "StepLR: gamma must be > 0"),
    (lambda: ks.StepLR(_o(), 3, gamma=-0.5), ValueError, "StepLR: gamma"),
    (lambda: ks.StepLR(_o(), 3, last_epoch=-2), ValueError, "StepLR: last_epoch"),
    (lambda: ks.StepLR(_o(), 3, last_epoch=5), KeyError, "initial_lr"),
    (lambda: ks.MultiStepLR(_o(), [30, 10]), ValueError, "MultiStepLR: milestones must be incr"),
    (lambda: ks.MultiStepLR(_o(), [-1, 10]), ValueError, "MultiStepLR: milestones must be"),
    (lambda: ks.MultiStepLR(_o(), 10), TypeError, "MultiStepLR: milestones must be a list"),
    (lambda: ks.MultiStepLR(_o(), [5], gamma=0.0), ValueError, "MultiStepLR: gamma"),
    (lambda: ks.ExponentialLR(_o(), 0), ValueError, "ExponentialLR: gamma must be > 0"),
    (lambda: ks.ExponentialLR(_o(), float("nan")), ValueError, "ExponentialLR: gamma"),
    (lambda: ks.ExponentialLR(_o(), "0.9"), TypeError, "ExponentialLR: gamma must be a real"),
    (lambda: ks.CosineAnnealingLR(_o(), 0), ValueError, "CosineAnnealingLR: T_max must be > 0"),
    (lambda: ks.CosineAnnealingLR(_o(), -5), ValueError, "CosineAnnealingLR: T_max"),
    (lambda: ks.CosineAnnealingLR(_o(), 5, eta_min=-1), ValueError, "CosineAnnealingLR: eta_m"),
    (lambda: ks.LinearLR(_o(), start_factor=0), ValueError, "LinearLR: start_factor"),
    (lambda: ks.LinearLR(_o(), end_factor=1.5), ValueError, "LinearLR: end_factor"),
    (lambda: ks.LinearLR(_o(), total_iters=0), ValueError, "LinearLR: total_iters"),
    (lambda: ks.ConstantLR(_o(), factor=0), ValueError, "ConstantLR: factor"),
    (lambda: ks.ConstantLR(_o(), factor=2), ValueError, "ConstantLR: factor"),
    (lambda: ks.PolynomialLR(_o(), total_iters=0), ValueError, "PolynomialLR: total_iters"),
    (lambda: ks.PolynomialLR(_o(), power=-1), ValueError, "PolynomialLR: power"),
    (lambda: ks.LambdaLR(_o(), 0.5), TypeError, "LambdaLR: lr_lambda must be callable"),
    (lambda: ks.LambdaLR(_o(), [lambda e: 1]), ValueError, "LambdaLR: lr_lambda has 1 values"),
    (lambda: ks.MultiplicativeLR(_o(), [None, None]), TypeError, "MultiplicativeLR: lr_lambda"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, mode="sawtooth"), ValueError, "CyclicLR: mode must"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, step_size_up=0), ValueError, "CyclicLR: step_size_up"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, step_size_down=0), ValueError, "CyclicLR: step_size_d"),
    (lambda: ks.CyclicLR(_o(), -0.01, 0.1), ValueError, "CyclicLR: base_lr"),
    (lambda: ks.CyclicLR(_o(), 0.01, [0.1] * 3), ValueError, "CyclicLR: max_lr has 3 values"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, scale_mode="x"), ValueError, "CyclicLR: scale_mode"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, gamma=0, mode="exp_range"), ValueError,
     "CyclicLR: gamma"),
    (lambda: ks.CyclicLR(_o(), 0.01, 0.1, max_momentum=1.5), ValueError, "CyclicLR: max_mom"),
    (lambda: ks.CyclicLR(Adagrad(_kiln_params(1), 0.1), 0.01, 0.1), ValueError,
     "CyclicLR: cycle_momentum=True needs"),
    (lambda: ks.OneCycleLR(_o(), 0.1), ValueError, "OneCycleLR: pass total_steps"),
    (lambda: ks.OneCycleLR(_o(), 0.1, total_steps=0), ValueError, "OneCycleLR: total_steps"),
    (lambda: ks.OneCycleLR(_o(), 0.1, epochs=0, steps_per_epoch=5), ValueError,
     "OneCycleLR: epochs"),
    (lambda: ks.OneCycleLR(_o(), 0.1, 10, pct_start=1.5), ValueError, "OneCycleLR: pct_start"),
    (lambda: ks.OneCycleLR(_o(), 0.1, 10, anneal_strategy="exp"), ValueError,
     "OneCycleLR: anneal_strategy"),
    (lambda: ks.OneCycleLR(_o(), 0.1, 10, div_factor=0), ValueError, "OneCycleLR: div_factor"),
    (lambda: ks.CosineAnnealingWarmRestarts(_o(), 0), ValueError,
     "CosineAnnealingWarmRestarts: T_0 must be positive"),
    (lambda: ks.CosineAnnealingWarmRestarts(_o(), 5, T_mult=0), ValueError,
     "CosineAnnealingWarmRestarts: T_mult"),
    (lambda: ks.CosineAnnealingWarmRestarts(_o(), 5).step(-1), ValueError,
     "CosineAnnealingWarmRestarts.step: epoch must be >= 0"),
    (lambda: ks.ReduceLROnPlateau(_o(), factor=1.0), ValueError,
     "ReduceLROnPlateau: factor must be >= 0 and < 1"),
    (lambda: ks.ReduceLROnPlateau(_o(), factor=1.5), ValueError, "ReduceLROnPlateau: factor"),
    (lambda: ks.ReduceLROnPlateau(_o(), mode="median"), ValueError,
     "ReduceLROnPlateau: mode must be 'min' or 'max'"),
    (lambda: ks.ReduceLROnPlateau(_o(), threshold_mode="pct"), ValueError,
     "ReduceLROnPlateau: threshold_mode"),
    (lambda: ks.ReduceLROnPlateau(_o(), patience=-1), ValueError, "ReduceLROnPlateau: patience"),
    (lambda: ks.ReduceLROnPlateau(_o(), cooldown=1.5), TypeError, "ReduceLROnPlateau: cooldown"),
    (lambda: ks.ReduceLROnPlateau(_o(), min_lr=[0.1]), ValueError,
     "ReduceLROnPlateau: min_lr has 1 values"),
    (lambda: ks.ReduceLROnPlateau(_o(), min_lr=-1), ValueError, "ReduceLROnPlateau: min_lr"),
    (lambda: ks.SequentialLR(_o(), [], []), ValueError, "SequentialLR: expects a non-empty"),
    (lambda: _sequential([10, 5]), ValueError, "SequentialLR: milestones must be increasing"),
    (lambda: _sequential([5]), ValueError, "SequentialLR: 3 schedulers need 2 milestones"),
    (lambda: ks.SequentialLR(_o(), [ks.StepLR(_o(), 3)], []), ValueError,
     "SequentialLR: schedulers\\[0\\] .* steers another optimizer"),
    (lambda: _plateau_in(ks.ChainedScheduler), ValueError, "ChainedScheduler: schedulers\\[0\\]"),
    (lambda: ks.ChainedScheduler([object()]), TypeError, "ChainedScheduler: schedulers\\[0\\]"),
    (lambda: ks.ChainedScheduler([]), ValueError, "ChainedScheduler: expects a non-empty"),
    (lambda: ks.warmup(_o(), 5), TypeError, "warmup: scheduler must be"),
    (lambda: ks.warmup(ks.StepLR(_o(), 3), -1), ValueError, "warmup: steps"),
    (lambda: ks.warmup(ks.warmup(ks.StepLR(_o(), 3), 2), 2), ValueError, "already has a warm"),
    (lambda: ks.warmup(_stepped(ks.StepLR(_o(), 3)), 2), ValueError,
     "warmup: wrap a newly created scheduler \\(this one is at step 1\\)"),
    (lambda: ks.InverseTimeLR(_o(), -0.1), ValueError, "InverseTimeLR: k must be >= 0"),
    (lambda: ks.InverseSqrtLR(_o(), warmup_steps=-3), ValueError, "InverseSqrtLR: warmup_steps"),
    (lambda: ks.scale_lr_for_batch_size(0.1, 0, 64), ValueError, "scale_lr_for_batch_size: base"),
    (lambda: ks.scale_lr_for_batch_size(0.1, 32, 6.5), TypeError, "scale_lr_for_batch_size: new"),
    (lambda: ks.scale_lr_for_batch_size(-0.1, 32, 64), ValueError, "scale_lr_for_batch_size: ba"),
    (_group_added_later, ValueError,
     "LambdaLR: the optimizer has 3 param groups but the schedule has 2"),
    (lambda: ks.StepLR(_o(), 3).load_state_dict([1]), TypeError, "StepLR.load_state_dict: exp"),
    (lambda: ks.StepLR(_o(), 3).load_state_dict(ks.CosineAnnealingLR(_o(), 5).state_dict()),
     ValueError, "StepLR.load_state_dict: unexpected keys \\['T_max', 'eta_min'\\]"),
]


@pytest.mark.parametrize("make,error,match", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()
