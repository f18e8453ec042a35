"""kiln.train.Trainer, History, metrics and Ensemble (runs without torch)."""

import math

import numpy as np
import pytest

import kiln
from kiln import nn, optim
from kiln.data import DataLoader, TensorDataset
from kiln.nn import functional as F
from kiln.train import Ensemble, History, Trainer
from kiln.train.metrics import resolve_metrics, top_k_accuracy


def blobs(n=240, classes=3, dim=6, seed=0):
    """Separable Gaussian blobs: a tiny problem a linear model learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, dim))
    labels = rng.integers(0, classes, n)
    x = (centers[labels] + rng.normal(0, 0.5, (n, dim))).astype(np.float32)
    return x, labels.astype(np.int64)


def make(lr=0.1, seed=0, **kwargs):
    kiln.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, F.cross_entropy, opt, **kwargs)


def loaders(batch=32):
    x, y = blobs()
    train = DataLoader(TensorDataset(x[:180], y[:180]), batch_size=batch, shuffle=True, seed=1)
    val = DataLoader(TensorDataset(x[180:], y[180:]), batch_size=64)
    return train, val


def test_digits_cnn_reaches_95_percent_validation_accuracy():
    pytest.importorskip("sklearn")
    from kiln.data import digits, stratified_split

    data = digits()
    images = data.tensors[0].numpy() / 16.0
    labels = data.tensors[1].numpy()
    train, val = stratified_split(TensorDataset(images.astype(np.float32), labels), [0.8, 0.2],
                                  labels=labels, seed=0)
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    trainer = Trainer(model, F.cross_entropy, optim.Adam(model.parameters(), lr=3e-3))
    history = trainer.fit(DataLoader(train, batch_size=32, shuffle=True, seed=0),
                          DataLoader(val, batch_size=256), epochs=6)
    assert history.history["val_accuracy"][-1] >= 0.95
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = trainer.evaluate(DataLoader(val, batch_size=100))
    assert result["accuracy"] == pytest.approx(history.history["val_accuracy"][-1], abs=1e-9)


def test_history_records_epochs_steps_and_lr():
    train, val = loaders()
    sched_opt = make()
    trainer = Trainer(sched_opt.model, F.cross_entropy, sched_opt.optimizer,
                      scheduler=optim.lr_scheduler.StepLR(sched_opt.optimizer, 1, gamma=0.5))
    history = trainer.fit(train, val, epochs=3)
    h = history.history
    assert list(h) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert h["epoch"] == [1, 2, 3]
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert len(history.steps["loss"]) == 3 * len(train)
    assert history.steps["step"][: len(train)] == list(range(1, len(train) + 1))
    assert history.steps["lr"][-1] == pytest.approx(0.025)
    assert history.history["val_accuracy"][-1] > 0.9
    rows = history.as_rows()
    assert len(rows) == 3 and rows[1]["epoch"] == 2
    assert history.best("val_loss")[0] in (1, 2, 3)
    assert history.best("val_accuracy")[1] == max(h["val_accuracy"])
    # A second fit continues the numbering.
    trainer.fit(train, epochs=1)
    assert trainer.epoch == 4 and h["epoch"][-1] == 4 and math.isnan(h["val_loss"][-1])
    restored = History()
    restored.load_state_dict(history.state_dict())
    assert restored.history["loss"] == h["loss"]


def test_per_step_scheduler_is_auto_detected():
    train, _ = loaders()
    base = make()
    sched = optim.lr_scheduler.OneCycleLR(base.optimizer, max_lr=0.2, total_steps=2 * len(train))
    trainer = Trainer(base.model, F.cross_entropy, base.optimizer, scheduler=sched)
    trainer.fit(train, epochs=2)
    lrs = trainer.history.steps["lr"]
    assert len(set(np.round(lrs, 12))) > len(train)  # changes every step, not every epoch
    assert max(lrs) == pytest.approx(0.2, rel=0.05)


def test_soft_targets_train_and_skip_accuracy():
    x, y = blobs()
    soft = np.eye(3, dtype=np.float32)[y] * 0.9 + 0.1 / 3
    trainer = make()
    history = trainer.fit(DataLoader(TensorDataset(x, soft), batch_size=32), epochs=2)
    assert math.isnan(history.history["accuracy"][0])
    assert history.history["loss"][1] < history.history["loss"][0]


def test_predict_arrays_loaders_and_tta():
    train, val = loaders()
    trainer = make()
    trainer.fit(train, epochs=2)
    x, _ = blobs()
    probs = trainer.predict(x, batch_size=50)
    assert probs.shape == (240, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(trainer.predict(kiln.tensor(x[180:])), trainer.predict(val),
                               rtol=1e-6)
    # Two views: the identity and a shifted copy; the result is the mean of both.
    shift = [lambda v: v, lambda v: v + np.float32(0.5)]
    both = trainer.predict(x, tta=shift)
    np.testing.assert_allclose(both, (probs + trainer.predict(x + np.float32(0.5))) / 2,
                               rtol=1e-5, atol=1e-7)
    assert trainer.model.training  # predict restored the mode fit left


def test_trainer_bad_input_names_the_op():
    base = make()
    with pytest.raises(TypeError, match="Trainer: model"):
        Trainer(object(), F.cross_entropy, base.optimizer)
    with pytest.raises(TypeError, match="Trainer: optimizer"):
        Trainer(base.model, F.cross_entropy, "sgd")
    with pytest.raises(TypeError, match="Trainer: callbacks"):
        Trainer(base.model, F.cross_entropy, base.optimizer, callbacks=[print])
    with pytest.raises(ValueError, match="Trainer: scheduler_interval"):
        Trainer(base.model, F.cross_entropy, base.optimizer, scheduler_interval="step")
    with pytest.raises(ValueError, match="LRSchedulerCallback: interval"):
        Trainer(base.model, F.cross_entropy, base.optimizer,
                scheduler=optim.lr_scheduler.StepLR(base.optimizer, 1), scheduler_interval="x")
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(base.model, F.cross_entropy, base.optimizer, metrics=["f2"])
    with pytest.raises(TypeError, match="Trainer.fit: train_loader"):
        base.fit(np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="Trainer.fit: epochs"):
        base.fit(loaders()[0], epochs=-1)
    with pytest.raises(ValueError, match="pair"):
        base.fit([np.zeros((4, 6), np.float32)])
    with pytest.raises(ValueError, match="no batches"):
        base.evaluate([])
    with pytest.raises(ValueError, match="Trainer.predict: batch_size"):
        base.predict(np.zeros((2, 6), np.float32), batch_size=0)
    with pytest.raises(ValueError, match="Trainer.predict: images must be batched"):
        base.predict(np.zeros(6, np.float32))


def test_metrics():
    out = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    assert top_k_accuracy(out, np.array([2, 0]), 1) == 0.5
    assert top_k_accuracy(out, np.array([2, 0]), 2) == 1.0
    assert top_k_accuracy(out, out, 1) is None  # soft targets
    names = resolve_metrics(["accuracy", "top2_accuracy", lambda o, t: 0.0])
    assert list(names) == ["accuracy", "top2_accuracy", "<lambda>"]
    assert names["top2_accuracy"](out, np.array([2, 1])) == 0.5
    trainer = make(metrics=["top2_accuracy"])
    history = trainer.fit(loaders()[0], epochs=1)
    assert "top2_accuracy" in history.history and "accuracy" not in history.history


def test_ensemble_averages_probabilities():
    kiln.manual_seed(3)
    models = [nn.Linear(5, 4) for _ in range(3)]
    ens = Ensemble(models)
    x = kiln.randn(7, 5)
    expected = np.mean([F.softmax(m(x), dim=1).detach().numpy() for m in models], axis=0)
    np.testing.assert_allclose(ens.probabilities(x).detach().numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(F.softmax(ens(x), dim=1).detach().numpy(), expected, rtol=1e-5)
    assert len(list(ens.parameters())) == 6
    with pytest.raises(ValueError, match="Ensemble"):
        Ensemble([])
    with pytest.raises(TypeError, match="Ensemble"):
        Ensemble([lambda v: v])
    with pytest.raises(ValueError, match="Ensemble: model 1"):
        Ensemble([nn.Linear(5, 4), nn.Linear(5, 3)])(x)
