"""The TensorBoard callback: event files read back with tensorboard's own reader."""

import sys

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.data import DataLoader, TensorDataset
from kiln.train import TensorBoard, Trainer

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _small_run(log_dir, epochs=2, **kwargs):
    kiln.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 3, 8, 8)).astype(np.float32)
    y = (x[:, 0].mean((1, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    callback = TensorBoard(log_dir, **kwargs)
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[callback])
    history = trainer.fit(loader, DataLoader(TensorDataset(x[:16], y[:16]), batch_size=16),
                          epochs=epochs)
    return model, history, x


def _read(log_dir):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0,
        event_accumulator.IMAGES: 0})
    acc.Reload()
    return acc


def test_scalars_histograms_and_images(tmp_path):
    model, history, x = _small_run(tmp_path, update_freq=2)
    acc = _read(tmp_path)
    tags = acc.Tags()
    scalars = set(tags["scalars"])
    for tag in ("epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy",
                "epoch/learning_rate", "batch/loss", "batch/lr"):
        assert tag in scalars, tag
    losses = [e.value for e in acc.Scalars("epoch/loss")]
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-6)
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2]
    assert [e.step for e in acc.Scalars("batch/loss")] == [2, 4, 6]  # 3 batches x 2 epochs
    params = [name for name, _ in model.named_parameters()]
    for name in params:
        ratios = [e.value for e in acc.Scalars(f"update_ratio/{name}")]
        if name == "1.bias":  # starts at zero: no ratio before it has moved once
            assert len(ratios) == 1 and ratios[0] > 0
            continue
        assert len(ratios) == 2 and all(0 <= r < 1 for r in ratios), name
        # A bias before batch norm gets no gradient (the norm removes it): it never moves.
        assert (max(ratios) < 1e-6) == (name == "0.bias"), (name, ratios)
    histograms = set(tags["histograms"])
    for name in params:
        assert f"weights/{name}" in histograms and f"gradients/{name}" in histograms
    for layer in ("0", "1", "2", "5"):
        assert f"activations/{layer}" in histograms
    weights = acc.Histograms("weights/0.weight")[-1].histogram_value
    assert weights.num == model[0].weight.numel()
    np.testing.assert_allclose(weights.sum, float(model[0].weight.detach().numpy().sum()),
                               rtol=1e-4, atol=1e-6)
    images = set(tags["images"])
    assert {"inputs", "filters/0"} <= images
    inputs = acc.Images("inputs")[0]
    assert inputs.width > 8 * 4 and inputs.height > 8 * 2
    assert len(acc.Images("filters/0")) == 2  # one per epoch
    png = acc.Images("filters/0")[0].encoded_image_string
    assert png.startswith(b"\x89PNG")


def test_histogram_freq_zero_and_no_images(tmp_path):
    _small_run(tmp_path, epochs=1, histogram_freq=0, write_images=False)
    tags = _read(tmp_path).Tags()
    assert not tags["histograms"] and not tags["images"]
    assert "epoch/loss" in tags["scalars"]
    assert not any(t.startswith("update_ratio/") for t in tags["scalars"])


def test_bad_arguments_and_missing_writer(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="histogram_freq must be an int >= 0"):
        TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(ValueError, match="update_freq must be 'epoch' or an int >= 1"):
        TensorBoard(tmp_path, update_freq="batch")
    with pytest.raises(ValueError, match="max_images"):
        TensorBoard(tmp_path, max_images=0)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        TensorBoard(tmp_path)
