"""kiln.recipe: every check catches a planted fault and passes a healthy model."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

import kiln
import kiln.nn as nn
import kiln.nn.functional as F
from kiln import recipe
from kiln.autograd import Function
from kiln.data import DataLoader, TensorDataset


def blobs(n: int = 96, classes: int = 3, dim: int = 10, seed: int = 0, sep: float = 2.0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dim)) * sep
    y = np.arange(n) % classes
    x = centers[y] + rng.standard_normal((n, dim))
    return kiln.tensor(x.astype(np.float32)), kiln.tensor(y.astype(np.int64))


def mlp(dim: int = 10, hidden: int = 32, classes: int = 3, seed: int = 0) -> nn.Module:
    kiln.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def scale_(param: nn.Parameter, factor: float) -> None:
    param.detach().numpy()[...] *= factor


def tanh_stack(depth: int = 6, width: int = 64, weight_scale: float = 1.0) -> nn.Module:
    """Xavier-initialized tanh MLP (healthy: the std stays put across layers)."""
    kiln.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        nn.init.xavier_normal_(linear.weight, gain=5 / 3)
        nn.init.zeros_(linear.bias)
        scale_(linear.weight, weight_scale)
        layers += [linear, nn.Tanh()]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- initial loss
def test_initial_loss_healthy_is_near_log_c():
    x, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = recipe.check_initial_loss(mlp(), DataLoader(TensorDataset(x, y), batch_size=32))
    assert report.ok and report.num_classes == 3
    assert report.expected == pytest.approx(math.log(3))
    assert abs(report.loss - math.log(3)) < 0.25 * math.log(3)


def test_initial_loss_last_layer_too_large_is_caught():
    x, y = blobs()
    model = mlp()
    scale_(model[2].weight, 50.0)
    with pytest.warns(UserWarning, match="last layer"):
        report = recipe.check_initial_loss(model, (x, y))
    assert not report.ok and report.loss > 2 * math.log(3)
    assert "last layer" in report.cause and "OFF" in str(report)


def test_initial_loss_leaves_batch_norm_statistics_alone():
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    model.eval()
    x, y = blobs()
    assert recipe.check_initial_loss(model, (x * 100.0, y)).ok  # batch statistics
    np.testing.assert_array_equal(model[1].running_mean.numpy(), np.zeros(16))
    assert not model.training


def test_initial_loss_single_label_is_suspected():
    x, _ = blobs()
    y = kiln.tensor(np.zeros(x.shape[0], dtype=np.int64))
    model = mlp()
    scale_(model[2].weight, 50.0)
    with pytest.warns(UserWarning, match="labels"):
        report = recipe.check_initial_loss(model, (x, y))
    assert "same class" in report.cause


# ---------------------------------------------------------------- overfit
def test_overfit_healthy_small_batch_succeeds():
    x, y = blobs(16)
    model = mlp()
    before = model[0].weight.detach().numpy().copy()
    report = recipe.overfit_small_batch(model, (x, y), steps=100, lr=1e-2)
    assert report.ok and report.steps <= 100 and report.accuracies[-1] == 1.0
    assert "100%" in str(report)
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), before)  # copy trained


def test_overfit_turns_dropout_off():
    x, y = blobs(16)
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.9), nn.Linear(32, 3))
    model[3].eval()
    report = recipe.overfit_small_batch(model, (x, y), steps=100, inplace=True)
    assert report.ok
    assert [m.training for m in model.modules()] == [True, True, True, True, False]


def test_overfit_lr_10_diverges():
    x, y = blobs(16)
    report = recipe.overfit_small_batch(mlp(), (x, y), steps=50, lr=10.0, optimizer="sgd")
    assert not report.ok and "too high" in report.problem


def test_overfit_tiny_lr_is_not_decreasing():
    x, y = blobs(16, seed=3)
    report = recipe.overfit_small_batch(mlp(), (x, y), steps=20, lr=1e-9, optimizer="sgd")
    assert not report.ok and "not decreasing" in report.problem


def test_checks_leave_the_random_stream_alone():
    x, y = blobs(16)
    kiln.manual_seed(5)
    expected = kiln.rand(4).numpy()
    model = nn.Sequential(nn.Linear(10, 16), nn.Dropout(0.5), nn.ReLU(), nn.Linear(16, 3))
    kiln.manual_seed(5)
    recipe.overfit_small_batch(model, (x, y), steps=3)
    recipe.lr_find(model, DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True),
                   num_steps=5)
    assert recipe.check_initial_loss(model, (x, y)).ok  # dropout is off for the check
    np.testing.assert_array_equal(kiln.rand(4).numpy(), expected)


def test_overfit_inplace_trains_the_model():
    x, y = blobs(16)
    model = mlp()
    before = model[0].weight.detach().numpy().copy()
    recipe.overfit_small_batch(model, (x, y), steps=5, lr=1e-2, inplace=True)
    assert not np.array_equal(model[0].weight.detach().numpy(), before)


# ---------------------------------------------------------------- lr_find
def test_lr_find_sweeps_suggests_and_detects_divergence():
    x, y = blobs(128, sep=0.5)  # overlapping classes: the loss cannot reach 0
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    model = mlp()
    before = model[2].weight.detach().numpy().copy()
    result = recipe.lr_find(model, loader, start=1e-5, end=10.0, num_steps=80)
    assert result.lrs[0] == pytest.approx(1e-5)
    assert np.all(np.diff(result.lrs) > 0) and len(result.losses) == len(result.lrs)
    assert result.diverged and result.diverged_at <= 10.0
    assert result.suggested_lr is not None and 1e-5 < result.suggested_lr < result.diverged_at
    assert "diverged" in str(result)
    lrs, losses, suggested = result
    assert lrs is result.lrs and losses is result.losses and suggested == result.suggested_lr
    np.testing.assert_array_equal(model[2].weight.detach().numpy(), before)


def test_lr_find_short_sweep_without_divergence():
    x, y = blobs(32)
    result = recipe.lr_find(mlp(), (x, y), start=1e-6, end=1e-4, num_steps=12)
    assert not result.diverged and len(result.lrs) == 12
    assert result.lrs[-1] == pytest.approx(1e-4)


# ---------------------------------------------------------------- activations
def test_activation_stats_healthy_tanh_stack_keeps_its_spread():
    x = kiln.randn(128, 64)
    stats = recipe.activation_stats(tanh_stack(), x)
    tanhs = [s for s in stats if s.kind == "Tanh"]
    assert len(tanhs) == 6 and len(stats) == 12
    assert not stats.collapsing()
    assert all(s.std > 0.3 for s in tanhs)
    assert all(s.dead_fraction is None and s.saturated_fraction is not None for s in tanhs)


def test_activation_stats_small_weights_collapse():
    model = tanh_stack(weight_scale=0.01)
    stats = recipe.activation_stats(model, kiln.randn(128, 64))
    assert stats.collapsing()
    assert stats.nonlinear()[-1].std < 1e-6
    assert "collapse" in str(stats)
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


def test_activation_stats_large_weights_saturate_tanh():
    stats = recipe.activation_stats(tanh_stack(depth=2, weight_scale=20.0), kiln.randn(64, 64))
    assert min(s.saturated_fraction for s in stats.nonlinear()) > 0.8


def test_activation_stats_dead_relu_and_sigmoid():
    kiln.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3), nn.Sigmoid())
    conv.bias.detach().numpy()[:2] = -100.0  # channels 0, 1 never fire
    x, y = kiln.randn(8, 1, 8, 8), kiln.tensor(np.zeros(8, dtype=np.int64))
    stats = recipe.activation_stats(model, (x, y))
    relu = next(s for s in stats if s.kind == "ReLU")
    assert relu.dead_fraction == pytest.approx(0.5) and relu.shape == (8, 4, 6, 6)
    sig = next(s for s in stats if s.kind == "Sigmoid")
    assert 0 <= sig.saturated_fraction <= 1 and sig.dead_fraction is None


def test_activation_stats_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "act.png"
    recipe.activation_stats(tanh_stack(depth=3), kiln.randn(32, 64)).plot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib_say_so(monkeypatch, tmp_path):
    x, y = blobs(32)
    result = recipe.lr_find(mlp(), (x, y), start=1e-5, end=1e-3, num_steps=10)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        result.plot(str(tmp_path / "lr.png"))
    assert not (tmp_path / "lr.png").exists()


def test_lr_find_plot(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs(32)
    result = recipe.lr_find(mlp(), (x, y), start=1e-5, end=1.0, num_steps=20)
    result.plot(str(tmp_path / "lr.png"))
    assert (tmp_path / "lr.png").stat().st_size > 1000


# ---------------------------------------------------------------- update ratio
@pytest.mark.parametrize("lr, flag", [(10.0, "too large"), (1e-9, "too small")])
def test_update_ratio_flags_bad_sgd_lr(lr, flag):
    x, y = blobs(32)
    model = mlp()
    for opt in (lr, kiln.optim.SGD(model.parameters(), lr=lr)):
        report = recipe.update_ratio(model, opt, (x, y))
        assert {r.flag for r in report} == {flag}
        assert report.flagged() and report.advice()
    assert all(p.grad is None for p in model.parameters())  # ran on a copy


def test_update_ratio_sane_lr_and_actual_change():
    x, y = blobs(32)
    model = mlp()
    opt = kiln.optim.SGD(model.parameters(), lr=1e-2)
    F.cross_entropy(model(x), y).backward()
    before = [p.detach().numpy().copy() for p in model.parameters()]
    measured = recipe.update_ratio(model, opt)  # uses the .grad already there
    from_grad = recipe.update_ratio(model, 1e-2)
    for a, b in zip(measured, from_grad):
        assert a.ratio == pytest.approx(b.ratio, rel=1e-5)
    assert all(1e-4 <= r.ratio <= 1e-1 for r in measured)
    for p, w in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), w)
    assert "parameter" in str(measured)


def test_update_ratio_zero_weights_are_not_flagged():
    x, y = blobs(32)
    model = mlp()
    nn.init.zeros_(model[0].bias)
    report = recipe.update_ratio(model, 1e-3, (x, y))
    entry = next(r for r in report if r.name == "0.bias")
    assert entry.flag == "zero weights" and math.isnan(entry.ratio)


# ---------------------------------------------------------------- diagnose_history
def train_history(lr: float, epochs: int = 8) -> dict[str, list[float]]:
    x, y = blobs(64, sep=0.5)
    model = mlp()
    opt = kiln.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(float(loss))
        loss.backward()
        opt.step()
    return {"loss": losses}


def test_diagnose_lr_10_is_too_high():
    findings = recipe.diagnose_history(train_history(10.0))
    assert findings.kinds[0] in ("nan", "explosion")
    assert "learning rate is too high" in str(findings)


def test_diagnose_trainer_history_with_lr_10():
    from kiln.train import Trainer

    x, y = blobs(192, sep=0.5)
    model = mlp()
    trainer = Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=10.0))
    history = trainer.fit(DataLoader(TensorDataset(x[:128], y[:128]), batch_size=32),
                          DataLoader(TensorDataset(x[128:], y[128:]), batch_size=64), epochs=4)
    findings = recipe.diagnose_history(history)
    assert findings.kinds[0] in ("nan", "explosion")
    assert "learning rate (10) is too high" in str(findings)


def test_diagnose_healthy_training():
    findings = recipe.diagnose_history(train_history(0.5, epochs=30))
    assert "nan" not in findings.kinds and "explosion" not in findings.kinds
    assert "flat" not in findings.kinds


@pytest.mark.parametrize("history, kind", [
    ({"loss": [2.3, 1.0, float("nan")]}, "nan"),
    ({"loss": [2.3, 1.0, 0.5], "val_loss": [2.3, None, float("inf")]}, "nan"),
    ({"loss": [2.3]}, "too_short"),
    ({"loss": [2.3, 1.5, 1.0, 3.0, 9.0]}, "explosion"),
    ({"loss": [2.30, 2.30, 2.299, 2.30, 2.298]}, "flat"),
    ({"loss": [2.30, 2.30, 2.29, 2.29, 2.2, 1.5, 0.8, 0.3, 0.2, 0.1],
      "accuracy": [0.1] * 5 + [0.6, 0.8, 0.9, 0.95, 0.97],
      "val_accuracy": [0.1] * 5 + [0.6, 0.8, 0.9, 0.94, 0.96]}, "slow_start"),
    ({"loss": [2.0, 1.0, 0.5, 0.2, 0.05], "val_loss": [2.0, 1.1, 0.9, 1.0, 1.3],
      "accuracy": [0.3, 0.7, 0.9, 0.97, 1.0], "val_accuracy": [0.3, 0.6, 0.7, 0.72, 0.7]},
     "overfitting"),
    ({"loss": [2.0, 1.0, 0.5, 0.2, 0.05], "val_loss": [2.0, 1.1, 0.9, 1.0, 1.3]},
     "overfitting"),
    ({"loss": [2.0, 1.8, 1.7, 1.65, 1.6], "val_loss": [2.0, 1.8, 1.7, 1.66, 1.61],
      "accuracy": [0.2, 0.3, 0.35, 0.38, 0.4], "val_accuracy": [0.2, 0.3, 0.35, 0.37, 0.4]},
     "underfitting"),
    ({"loss": [2.0, 0.8, 0.4, 0.2, 0.1], "val_loss": [2.0, 0.85, 0.45, 0.25, 0.15],
      "acc": [0.3, 0.8, 0.9, 0.96, 0.98], "val_acc": [0.3, 0.8, 0.9, 0.95, 0.97]}, "ok"),
])
def test_diagnose_reads_the_curves(history, kind):
    findings = recipe.diagnose_history(history)
    assert kind in findings.kinds, str(findings)
    assert str(findings).startswith("training diagnosis:")


def test_diagnose_accepts_history_objects():
    class History:
        history = {"loss": [2.3, 1.0, float("inf")], "lr": [10.0] * 3}

    assert recipe.diagnose_history(History()).kinds == ["nan"]
    from kiln.train import History as KilnHistory

    h = KilnHistory()
    for loss in (2.3, 2.3, 2.3):
        h.log_epoch({"loss": loss})
    assert recipe.diagnose_history(h).kinds == ["flat"]


# ---------------------------------------------------------------- gradcheck_model
class _WrongGrad(Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x)
        return x * w

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out, 2 * (grad_out * x).sum(axis=0)  # planted: twice the true dL/dw


class _Scale(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(kiln.ones(n))

    def forward(self, x):
        return _WrongGrad.apply(x, self.w)


def test_gradcheck_model_passes_a_healthy_cnn():
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 4))
    assert recipe.gradcheck_model(model, (2, 1, 8, 8), max_elements=6)
    assert model[0].weight.dtype == np.float32  # the model itself is untouched


def test_gradcheck_model_full_and_with_loss():
    model = mlp(dim=4, hidden=5)
    assert recipe.gradcheck_model(model, (3, 4), max_elements=None)
    assert recipe.gradcheck_model(model, (3, 4), loss_fn=lambda out: (out * out).sum())


def test_gradcheck_model_catches_a_wrong_gradient():
    model = nn.Sequential(nn.Linear(4, 3), _Scale(3))
    with pytest.raises(AssertionError, match=r"gradcheck_model: parameter 1\.w"):
        recipe.gradcheck_model(model, (2, 4))


# ---------------------------------------------------------------- bad input
def test_bad_input_names_the_op():
    x, y = blobs(16)
    model = mlp()
    with pytest.raises(TypeError, match="check_initial_loss"):
        recipe.check_initial_loss("model", (x, y))
    with pytest.raises(TypeError, match="overfit_small_batch"):
        recipe.overfit_small_batch(model, (x.numpy(), y))
    with pytest.raises(ValueError, match="overfit_small_batch"):
        recipe.overfit_small_batch(model, (x, y[:4]))
    with pytest.raises(ValueError, match="overfit_small_batch.*optimizer"):
        recipe.overfit_small_batch(model, (x, y), optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr_find.*start"):
        recipe.lr_find(model, (x, y), start=1.0, end=1e-3)
    with pytest.raises(ValueError, match="lr_find"):
        recipe.lr_find(model, [], num_steps=5)
    with pytest.raises(TypeError, match="activation_stats"):
        recipe.activation_stats(model, x.numpy())
    with pytest.raises(ValueError, match="update_ratio.*no parameter has a gradient"):
        recipe.update_ratio(model, 0.1)
    with pytest.raises(ValueError, match="update_ratio"):
        recipe.update_ratio(model, -1.0, (x, y))
    with pytest.raises(TypeError, match="update_ratio"):
        recipe.update_ratio(model, "sgd", (x, y))
    with pytest.raises(TypeError, match="diagnose_history"):
        recipe.diagnose_history([1.0, 2.0])
    with pytest.raises(ValueError, match="diagnose_history.*'loss'"):
        recipe.diagnose_history({"val_loss": [1.0]})
    with pytest.raises(ValueError, match="update_ratio.*none of the model's parameters"):
        recipe.update_ratio(model, kiln.optim.SGD(mlp().parameters(), lr=0.1), (x, y))
    for shape in ((0, 10), 10, (), (2.0, 10)):
        with pytest.raises(ValueError, match="gradcheck_model"):
            recipe.gradcheck_model(model, shape)
