"""save_grid/make_grid: torchvision's layout and rounding, labels, normalization, the
PNG written with and without Pillow (decoded back here), atomic writes, bad input."""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np
import pytest

import kiln
from kiln.data import save_grid
from kiln.data.grid import _png_bytes, make_grid

RNG = np.random.default_rng(0)


def decode_png(data: bytes) -> np.ndarray:
    """Decodes the 8-bit gray/RGB PNGs written here (any of the five row filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (0, 2)
    bpp = 1 if color == 0 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = np.zeros((height, stride), np.int64)
    for y in range(height):
        kind, row = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride,
                                                         y * (stride + 1) + 1).astype(np.int64)
        prev = out[y - 1] if y else np.zeros(stride, np.int64)
        cur = np.zeros(stride, np.int64)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            c = prev[x - bpp] if x >= bpp else 0
            b = prev[x]
            if kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                pred = [0, a, b, (a + b) // 2][kind]
            cur[x] = (row[x] + pred) % 256
        out[y] = cur
    return out.astype(np.uint8).reshape(height, width, bpp)


def reference_grid(images: np.ndarray, nrow: int, padding: int, pad: float) -> np.ndarray:
    """torchvision.utils.make_grid + save_image's rounding, written out in NumPy."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad))
    for i in range(n):
        y, x = (i // cols) * (h + padding) + padding, (i % cols) * (w + padding) + padding
        grid[:, y:y + h, x:x + w] = images[i]
    return np.clip(np.floor(grid * 255 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


@pytest.mark.parametrize("n,c,nrow,padding", [(1, 3, 8, 2), (10, 3, 4, 2), (7, 1, 3, 0),
                                              (5, 3, 8, 5)])
def test_layout_matches_torchvision(n, c, nrow, padding):
    images = RNG.random((n, c, 6, 9)).astype(np.float32)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=0.25)
    np.testing.assert_array_equal(grid, reference_grid(images, nrow, padding, 0.25))


def test_uint8_tensor_single_image_and_normalize():
    images = RNG.integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    grid = make_grid(kiln.tensor(images), nrow=2)
    np.testing.assert_array_equal(grid, reference_grid(images / 255.0, 2, 2, 0.0))
    single = make_grid(images[0], padding=0)
    np.testing.assert_array_equal(single, images[0].transpose(1, 2, 0))
    gray = make_grid(np.zeros((3, 4)), padding=0)
    assert gray.shape == (3, 4, 1)
    x = RNG.standard_normal((3, 1, 4, 4)) * 5
    unit = (x - x.min()) / (x.max() - x.min())
    np.testing.assert_array_equal(make_grid(x, normalize=True), reference_grid(unit, 8, 2, 0))
    each = np.stack([(im - im.min()) / (im.max() - im.min()) for im in x])
    np.testing.assert_array_equal(make_grid(x, normalize=True, scale_each=True),
                                  reference_grid(each, 8, 2, 0))
    ranged = (np.clip(x, -1, 1) + 1) / 2
    np.testing.assert_array_equal(make_grid(x, normalize=True, value_range=(-1, 1)),
                                  reference_grid(ranged, 8, 2, 0))


def test_labels_are_drawn_under_each_image():
    images = np.zeros((3, 3, 32, 32), np.float32)
    plain = make_grid(images, padding=2)
    grid = make_grid(images, padding=2, labels=[0, "cat", 7])
    assert grid.shape[0] > plain.shape[0] and grid.shape[1] == plain.shape[1]
    strip = grid[2 + 32:, :, 0]
    for i in range(3):
        cell = strip[:, 2 + i * 34: 2 + i * 34 + 32]
        assert cell.max() == 255  # some text in every cell
    assert grid[2:34, 2:34].max() == 0  # the image itself is untouched
    light = make_grid(images, labels=[1, 2, 3], pad_value=1.0)
    assert light.min() == 0  # dark text on a light background


@pytest.mark.parametrize("pillow", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip(tmp_path, monkeypatch, pillow, channels):
    if pillow:
        pytest.importorskip("PIL")
    else:
        monkeypatch.setitem(sys.modules, "PIL", None)
    images = RNG.random((5, channels, 7, 6)).astype(np.float32)
    path = save_grid(images, tmp_path / "grid.png", labels=list(range(5)), nrow=3)
    expected = make_grid(images, nrow=3, labels=list(range(5)))
    np.testing.assert_array_equal(decode_png(path.read_bytes()), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_builtin_writer_is_readable_by_pillow():
    image_module = pytest.importorskip("PIL.Image")
    import io

    grid = RNG.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    decoded = np.asarray(image_module.open(io.BytesIO(_png_bytes(grid))))
    np.testing.assert_array_equal(decoded, grid)


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")
    monkeypatch.setitem(sys.modules, "PIL", None)

    def broken(grid):
        raise OSError("disk full")

    monkeypatch.setattr("kiln.data.grid._png_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        save_grid(np.zeros((1, 3, 4, 4)), path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["grid.png"]


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(images=np.zeros((2, 2, 4, 4))), ValueError, "1 or 3 channels"),
    (dict(images=np.zeros((1, 1, 1, 2, 2))), ValueError, r"expected images \(N, C, H, W\)"),
    (dict(images=np.zeros((0, 3, 4, 4))), ValueError, "empty batch"),
    (dict(images=[[0.5]]), TypeError, "numpy.ndarray or kiln.Tensor"),
    (dict(images=np.array([["a"]])), TypeError, "numeric images"),
    (dict(nrow=0), ValueError, "nrow must be positive"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(labels=[1]), ValueError, "1 labels for 2 images"),
    (dict(value_range=(1, 0), normalize=True), ValueError, "value_range"),
    (dict(pad_value=2.0), ValueError, "pad_value"),
    (dict(path="grid.jpg"), ValueError, "must end in .png"),
])
def test_bad_input(tmp_path, kwargs, error, message):
    args = dict(images=np.zeros((2, 3, 4, 4)), path=tmp_path / "g.png", **{})
    args.update(kwargs)
    if not str(args["path"]).startswith(str(tmp_path)):
        args["path"] = tmp_path / args["path"]
    with pytest.raises(error, match="save_grid: .*" + message):
        save_grid(args.pop("images"), args.pop("path"), **args)
    assert list(tmp_path.iterdir()) == []
