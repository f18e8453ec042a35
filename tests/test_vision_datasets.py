"""kiln.vision.datasets, .models and .utils (torchvision's under ``kiln run``): datasets
read from small files written in torchvision's layouts, samples and attributes as
torchvision's; model builders with torchvision's signatures; make_grid/save_image;
and a CIFAR training program written for PyTorch, run unchanged by ``kiln run``."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _vision_files import CIFAR10_CLASSES, write_cifar10, write_mnist

import kiln
from kiln.utils.data import DataLoader
from kiln.vision import datasets, models, utils
from kiln.vision import transforms as T

Image = pytest.importorskip("PIL.Image")
HERE = Path(__file__).resolve().parent


def test_cifar10_samples_and_attributes(tmp_path):
    written = write_cifar10(tmp_path)
    train = datasets.CIFAR10(tmp_path, train=True)
    images, labels = written["train"]
    assert len(train) == 40 and train.data.shape == (40, 32, 32, 3)
    assert train.data.dtype == np.uint8 and train.targets == labels.tolist()
    assert train.classes == CIFAR10_CLASSES and train.class_to_idx["cat"] == 3
    image, target = train[5]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(image), images[5].transpose(1, 2, 0))
    assert type(target) is int and target == labels[5]
    test = datasets.CIFAR10(str(tmp_path), train=False, transform=T.ToTensor(),
                            target_transform=lambda t: t + 100)
    x, t = test[2]
    np.testing.assert_array_equal(x.numpy(), written["test"][0][2] / np.float32(255))
    assert t == written["test"][1][2] + 100
    assert "Number of datapoints: 16" in repr(test)
    test.data, test.targets = test.data[:3], test.targets[:3]  # as programs subset them
    assert len(test) == 3 and len(list(DataLoader(test, batch_size=2))) == 2
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.CIFAR10(tmp_path / "elsewhere")


def test_cifar_batches_reach_the_loader_one_sample_at_a_time(tmp_path):
    write_cifar10(tmp_path)
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    loader = DataLoader(datasets.CIFAR10(tmp_path, transform=tf), batch_size=8, shuffle=True,
                        num_workers=2)
    batches = list(loader)
    assert len(batches) == 5
    x, y = batches[0]
    assert x.shape == (8, 3, 32, 32) and x.dtype == kiln.float32 and y.dtype == kiln.int64


def test_random_transforms_in_loader_workers_repeat_with_the_seed(tmp_path):
    write_cifar10(tmp_path)
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])

    def one_pass(workers: int, seed: int = 7) -> list[np.ndarray]:
        kiln.manual_seed(seed)
        loader = DataLoader(datasets.CIFAR10(tmp_path, transform=tf), batch_size=8,
                            shuffle=True, num_workers=workers)
        return [x.numpy() for x, _ in loader]

    first = one_pass(2)
    for other in (one_pass(2), one_pass(3)):  # whichever thread reads which sample
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, one_pass(2, seed=8)))


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return os.system, ("echo owned",)

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": Evil()}, handle)
    with pytest.raises(ValueError, match="refusing global posix.system"):
        datasets.CIFAR10(tmp_path)


def test_cifar100_reads_its_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 6), ("test", 4)):
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(range(90, 90 + n)),
                         b"coarse_labels": [1] * n}, handle, protocol=4)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}, handle)
    ds = datasets.CIFAR100(tmp_path, train=False)
    assert len(ds) == 4 and ds.targets == [90, 91, 92, 93] and len(ds.classes) == 100
    assert ds[1][1] == 91 and ds.data.shape == (4, 32, 32, 3)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_and_fashion_mnist(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    ds = datasets.MNIST(tmp_path, train=False)
    assert isinstance(ds.data, kiln.Tensor) and ds.data.shape == (12, 28, 28)
    assert ds.data.dtype == kiln.uint8 and ds.targets.dtype == kiln.int64
    np.testing.assert_array_equal(ds.targets.numpy(), labels)
    assert ds.classes[0] == "0 - zero" and ds.class_to_idx["9 - nine"] == 9
    image, target = ds[3]
    assert image.mode == "L" and type(target) is int and target == labels[3]
    np.testing.assert_array_equal(np.asarray(image), images[3])
    assert datasets.MNIST(tmp_path, train=False, transform=T.ToTensor())[0][0].shape == (1, 28, 28)
    ds.data, ds.targets = ds.data[4:6], ds.targets[4:6]
    assert len(ds) == 2 and ds[1][1] == labels[5]
    np.testing.assert_array_equal(np.asarray(ds[1][0]), images[5])
    fashion_images, _ = write_mnist(tmp_path, name="FashionMNIST", gz=gz, seed=1)
    fashion = datasets.FashionMNIST(tmp_path, train=False)
    assert fashion.classes[0] == "T-shirt/top"
    np.testing.assert_array_equal(np.asarray(fashion[0][0]), fashion_images[0])


def test_without_pillow_samples_are_arrays(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path)
    write_mnist(tmp_path)
    monkeypatch.setattr(datasets, "_Image", None)
    image, _ = datasets.CIFAR10(tmp_path)[0]
    assert isinstance(image, np.ndarray) and image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image, written["train"][0][0].transpose(1, 2, 0))
    digit, _ = datasets.MNIST(tmp_path, train=False)[0]
    assert isinstance(digit, np.ndarray) and digit.shape == (28, 28)
    x = T.Compose([T.ToTensor(), T.RandomCrop(24), T.Normalize(0.5, 0.5)])(image)
    assert x.shape == (3, 24, 24)


def _image_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, files in (("dog", ["b.png", "a.jpg", "notes.txt"]), ("cat", ["z.png"]),
                        ("cat/nested", ["y.bmp"])):
        (root / name).mkdir(parents=True, exist_ok=True)
        for file in files:
            if file.endswith(".txt"):
                (root / name / file).write_text("not an image")
            else:
                Image.fromarray(rng.integers(0, 256, (5, 4 + len(file), 3), dtype=np.uint8)).save(
                    root / name / file)


def test_image_folder_as_torchvision(tmp_path):
    _image_tree(tmp_path)
    ds = datasets.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    names = [os.path.relpath(path, tmp_path) for path, _ in ds.samples]
    assert names == ["cat/z.png", "cat/nested/y.bmp", "dog/a.jpg", "dog/b.png"]
    assert ds.targets == [0, 0, 1, 1] and ds.imgs is ds.samples
    image, target = ds[3]
    assert image.mode == "RGB" and image.size == (9, 5) and target == 1
    resized = datasets.ImageFolder(tmp_path, transform=T.Compose([T.Resize((6, 6)),
                                                                  T.ToTensor()]))
    x, y = next(iter(DataLoader(resized, batch_size=4)))
    assert x.shape == (4, 3, 6, 6) and y.tolist() == [0, 0, 1, 1]
    only_png = datasets.ImageFolder(tmp_path, is_valid_file=lambda p: p.endswith(".png"))
    assert len(only_png) == 2
    texts = datasets.DatasetFolder(tmp_path, loader=lambda p: Path(p).read_text(),
                                   extensions=(".txt",), allow_empty=True)
    assert texts[0] == ("not an image", 1)
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes cat"):
        datasets.DatasetFolder(tmp_path, loader=str, extensions=(".txt",))
    with pytest.raises(ValueError, match="Both extensions and is_valid_file cannot be None"):
        datasets.DatasetFolder(tmp_path, loader=str)
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        datasets.ImageFolder(tmp_path / "cat" / "nested")


def test_models_take_torchvision_arguments():
    net = models.resnet18(num_classes=7)
    net.eval()
    assert net(kiln.randn(1, 3, 32, 32)).shape == (1, 7)
    assert models.get_model("mobilenet_v2", weights=None, num_classes=3).classifier[-1] \
        .out_features == 3
    assert "vgg16_bn" in models.list_models()
    with pytest.raises(TypeError):
        models.resnet18(None)  # weights is keyword-only, as torchvision's
    with pytest.raises(ValueError, match="kiln does not support torchvision.models.densenet121"):
        models.get_model("densenet121")
    with pytest.raises(ValueError, match="weights or pretrained, not both"):
        models.resnet18(weights="DEFAULT", pretrained=True)


def test_pretrained_names_mean_kilns_packaged_weights(tmp_path):
    net = models.resnet18(num_classes=5)
    path = tmp_path / "r18.safetensors"
    kiln.models.save(net, path)
    loaded = models.resnet18(weights=str(path), num_classes=5)
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    for name in ("IMAGENET1K_V1", "DEFAULT", "ResNet18_Weights.IMAGENET1K_V1"):
        with pytest.raises(ValueError, match="resnet18: no ImageNet weights ship with kiln"):
            models.resnet18(weights=name)
    with pytest.raises(ValueError, match="resnet18: no ImageNet weights ship with kiln"):
        models.resnet18(pretrained=True)


def _grid_reference(x: np.ndarray, nrow: int, padding: int, pad_value: float) -> np.ndarray:
    """torchvision.utils.make_grid, written out for (N, 3, H, W)."""
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding),
                   pad_value, x.dtype)
    for k in range(n):
        top, left = (k // cols) * (h + padding) + padding, (k % cols) * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def test_make_grid_and_save_image(tmp_path):
    x = np.random.default_rng(0).random((5, 3, 4, 6)).astype(np.float32) * 3 - 1
    grid = utils.make_grid(kiln.Tensor(x), nrow=2, padding=1, pad_value=0.5)
    assert isinstance(grid, kiln.Tensor)
    np.testing.assert_array_equal(grid.numpy(), _grid_reference(x, 2, 1, 0.5))
    normalized = utils.make_grid(kiln.Tensor(x), normalize=True)
    expected = _grid_reference((x - x.min()) / (x.max() - x.min()), 8, 2, 0.0)
    np.testing.assert_allclose(normalized.numpy(), expected, atol=1e-6)
    gray = utils.make_grid([kiln.Tensor(x[0, :1]), kiln.Tensor(x[1, :1])])
    assert gray.shape == (3, 8, 18)
    assert utils.make_grid(kiln.Tensor(x[0])).shape == (3, 4, 6)  # one image: no padding
    path = tmp_path / "grid.png"
    utils.save_image(kiln.Tensor(x), path, nrow=3)
    saved = np.asarray(Image.open(path))
    reference = _grid_reference(x, 3, 2, 0.0)
    np.testing.assert_array_equal(saved, np.clip(reference * 255 + 0.5, 0, 255).astype(
        np.uint8).transpose(1, 2, 0))
    with pytest.raises(ValueError, match="unknown file extension"):
        utils.save_image(kiln.Tensor(x), tmp_path / "grid.unknown")


def _run_program(name: str, root: Path) -> list[list[str]]:
    """The program's printed words under ``python -m kiln.run PROGRAM ROOT``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "kiln.run", str(HERE / "programs" / name),
                           str(root)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split() for line in done.stdout.splitlines()]


def test_mnist_example_runs_unchanged_under_kiln_run(tmp_path):
    write_mnist(tmp_path)
    lines = _run_program("mnist_torchvision.py", tmp_path)
    assert [line[0] for line in lines] == ["loss", "loss", "test"]
    assert all(np.isfinite(float(line[1])) for line in lines)
    assert 0 <= int(lines[2][2]) <= 12


def test_cifar_program_runs_unchanged_under_kiln_run(tmp_path):
    write_cifar10(tmp_path)
    lines = _run_program("cifar_torchvision.py", tmp_path)
    losses = [float(line[1]) for line in lines if line[0] == "loss"]
    assert len(losses) == 2 and all(0.5 < v < 5.0 for v in losses)
    assert lines[2][0] == "accuracy" and lines[2][3:] == ["16", "in", "10", "classes"]
    assert lines[3] == ["resnet18", "(2,", "10)"] and lines[4] == ["grid", "batch.png"]
    assert Image.open(tmp_path / "batch.png").size == (70, 70)


def test_fake_data_is_repeatable_per_index():
    ds = datasets.FakeData(size=6, image_size=(3, 5, 4), num_classes=3, transform=T.ToTensor())
    x, y = ds[2]
    assert x.shape == (3, 5, 4) and x.dtype == kiln.float32 and 0 <= y < 3
    np.testing.assert_array_equal(ds[2][0].numpy(), x.numpy())
    assert not np.array_equal(ds[3][0].numpy(), x.numpy())
    assert len(ds) == 6 and isinstance(datasets.FakeData(2)[1][0], Image.Image)
    with pytest.raises(IndexError, match="out of range"):
        ds[6]
