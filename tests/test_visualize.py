"""kiln.visualize and ``kiln visualize``: the pictures' layout and content (a planted
filter in its cell, activation maps equal to the layer's output, saliency peaked at
the one pixel a score depends on, the most confidently wrong images in order)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kiln
from kiln import cli, nn, visualize
from kiln.data import DataLoader, TensorDataset


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _cell(grid: np.ndarray, index: int, tile: int, nrow: int, padding: int = 2) -> np.ndarray:
    top = (index // nrow) * (tile + padding) + padding
    left = (index % nrow) * (tile + padding) + padding
    return grid[top:top + tile, left:left + tile]


def test_planted_filter_shows_up_in_its_cell(tmp_path: Path):
    conv = nn.Conv2d(1, 10, 5)
    with kiln.no_grad():
        conv.weight.zero_()
        conv.weight[6, 0, :, 3] = 1.0  # a vertical bar in filter 6
    model = nn.Sequential(nn.Identity(), conv, nn.ReLU(), nn.Conv2d(10, 2, 3))
    visualize.filters_grid(model, tmp_path / "f.png", zoom=4)
    grid = _png(tmp_path / "f.png")
    assert grid.shape == (2 * (20 + 2) + 2, 8 * (20 + 2) + 2)  # 10 tiles of 20x20, 8 per row
    bar = np.zeros((5, 5), np.uint8)
    bar[:, 3] = 255
    np.testing.assert_array_equal(_cell(grid, 6, 20, 8), bar.repeat(4, 0).repeat(4, 1))
    for other in (0, 5, 7, 9):
        assert not _cell(grid, other, 20, 8).any()


def test_rgb_and_multichannel_filters(tmp_path: Path):
    conv = nn.Conv2d(3, 4, 3)
    with kiln.no_grad():
        conv.weight.zero_()
        conv.weight[2, 0] = 1.0  # filter 2 is pure red
    visualize.filters_grid(conv, tmp_path / "rgb.png", zoom=1)
    grid = _png(tmp_path / "rgb.png")
    assert grid.shape == (3 + 4, 4 * 5 + 2, 3)
    np.testing.assert_array_equal(_cell(grid, 2, 3, 4)[..., 0], 255)
    assert not _cell(grid, 2, 3, 4)[..., 1:].any()
    deep = nn.Conv2d(2, 3, 3)  # C_in = 2: one row of 2 gray tiles per output channel
    visualize.filters_grid(deep, tmp_path / "deep.png", zoom=2)
    assert _png(tmp_path / "deep.png").shape == (3 * 8 + 2, 2 * 8 + 2)
    with pytest.raises(ValueError, match="Linear has no Conv2d layer"):
        visualize.filters_grid(nn.Linear(2, 2), tmp_path / "none.png")


def test_activation_maps_are_the_layers_output(tmp_path: Path):
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    image = np.random.default_rng(0).standard_normal((1, 6, 6)).astype(np.float32)
    model.train()
    model[2].eval()
    maps = visualize.activation_maps(model, "1", image, tmp_path / "a.png", zoom=3)
    assert model.training and model[0].training and not model[2].training  # modes come back
    with kiln.no_grad():
        expected = model[1](model[0](kiln.tensor(image[None]))).numpy()[0]
    np.testing.assert_array_equal(maps, expected)
    assert _png(tmp_path / "a.png").shape == (18 + 4, 5 * 20 + 2)
    limited = visualize.activation_maps(model, model[0], image[None], tmp_path / "b.png",
                                        max_maps=2, zoom=1)
    assert limited.shape == (5, 6, 6) and _png(tmp_path / "b.png").shape == (10, 18)
    with pytest.raises(ValueError, match="activation_maps: Sequential has no layer 'conv9'"):
        visualize.activation_maps(model, "conv9", image, tmp_path / "c.png")


def test_saliency_is_peaked_at_the_one_pixel_the_score_reads(tmp_path: Path):
    c, h, w = 3, 5, 6
    linear = nn.Linear(c * h * w, 2, bias=False)
    with kiln.no_grad():
        linear.weight.zero_()
        # class 0 reads pixel (1, 2, 4) with weight -3; class 1 reads pixel (0, 0, 0)
        linear.weight[0, np.ravel_multi_index((1, 2, 4), (c, h, w))] = -3.0
        linear.weight[1, 0] = 1.0
    model = nn.Sequential(nn.Flatten(), linear)
    x = np.random.default_rng(1).standard_normal((2, c, h, w)).astype(np.float32)
    maps = visualize.saliency(model, x, 0, tmp_path / "s.png", zoom=1)
    expected = np.zeros((2, h, w), np.float32)
    expected[:, 2, 4] = 3.0
    np.testing.assert_array_equal(maps, expected)
    per_image = visualize.saliency(model, x, [0, 1])
    assert per_image[0, 2, 4] == 3.0 and per_image[1, 0, 0] == 1.0
    assert np.count_nonzero(per_image) == 2
    assert _png(tmp_path / "s.png").shape == (h + 4, 4 * (w + 2) + 2, 3)  # image, map, ...
    with pytest.raises(ValueError, match="saliency: target 2 is not a class"):
        visualize.saliency(model, x, 2)


def test_worst_misclassified_in_order_from_a_loader_or_a_dataset(tmp_path: Path):
    # Logits are the three pixel values of each 1x3 image.
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False))
    with kiln.no_grad():
        model[1].weight.copy_(kiln.tensor(np.eye(3, dtype=np.float32)))
    logits = np.array([[5, 0, 0], [0, 1, 0], [0, 0, 9], [3, 0, 0], [0, 7, 0], [0, 0, 2]],
                      np.float32)
    labels = np.array([1, 1, 0, 0, 2, 0])  # wrong: 0 (p 0.99), 2 (~1.0), 4 (~1.0), 5 (0.78)
    data = TensorDataset(logits.reshape(6, 1, 1, 3), labels)
    found = visualize.worst_misclassified(model, DataLoader(data, batch_size=2),
                                          tmp_path / "w.png", k=3)
    assert [f["index"] for f in found] == [2, 4, 0]
    assert [(f["label"], f["predicted"]) for f in found] == [(0, 2), (2, 1), (1, 0)]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose([f["confidence"] for f in found], probs[[2, 4, 0]].max(1))
    assert _png(tmp_path / "w.png").shape[1] == 3 * (48 + 2) + 2
    assert visualize.worst_misclassified(model, data, tmp_path / "d.png", k=3) == found
    right = TensorDataset(logits.reshape(6, 1, 1, 3), logits.argmax(1))
    assert visualize.worst_misclassified(model, right, tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="the digits come with scikit-learn")
def test_kiln_visualize_writes_the_pictures_into_the_run(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]):
    assert cli.main(["train", "--data", "digits", "--quiet", "--epochs", "1", "--out",
                     str(tmp_path), "--name", "r"]) == 0
    assert cli.main(["visualize", str(tmp_path / "r" / "last.safetensors"), "--images", "3"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "r" / "visualize"
    assert f"files in {folder}" in out
    for name in ("filters.png", "activations.png", "saliency.png"):
        assert _png(folder / name).ndim == 2  # gray images and maps
    assert _png(folder / "filters.png").shape[1] == 6 * (45 + 2) + 2  # lenet5: 6 filters 5x5
    assert cli.main(["visualize", str(tmp_path / "r" / "last.safetensors"), "--layer",
                     "nope"]) == 2
    assert "--layer: Sequential has no layer 'nope'; its layers: 0, 1," in capsys.readouterr().err
    assert not (tmp_path / "r" / "visualize-2").exists()
