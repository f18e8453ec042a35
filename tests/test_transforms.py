"""kiln.data.transforms: each transform against a NumPy (or Pillow / PyTorch)
reference or an exact property, seeding and thread-count independence, the
DataLoader's per-batch seed, test-time augmentation and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import kernels
from kiln.data import DataLoader, TensorDataset
from kiln.data import transforms as T


def u8(n=4, c=3, h=9, w=11, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def f32(n=4, c=3, h=9, w=11, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


# ---------------------------------------------------------------------------- flips


@pytest.mark.parametrize("cls,axis", [(T.RandomHorizontalFlip, 3), (T.RandomVerticalFlip, 2)])
@pytest.mark.parametrize("make", [u8, f32])
def test_flip_twice_is_identity_and_matches_numpy(cls, axis, make):
    x = make()
    once = cls(p=1.0)(x)
    np.testing.assert_array_equal(once, np.flip(x, axis))
    np.testing.assert_array_equal(cls(p=1.0)(once), x)
    np.testing.assert_array_equal(cls(p=0.0)(x), x)


def test_flip_draws_per_image_with_probability_p():
    x = u8(n=2000, h=2, w=3)
    y = T.RandomHorizontalFlip(p=0.3, seed=5)(x)
    flipped = np.all(y == x[..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(y == x, axis=(1, 2, 3)))
    assert abs(flipped.mean() - 0.3) < 0.05


# ---------------------------------------------------------------------------- crops


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("make", [u8, f32])
def test_crop_kernel_matches_numpy_pad(mode, make):
    x = make(n=3, h=5, w=4)
    pad = 7  # wider than the image: reflection repeats
    numpy_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    kwargs = {"constant_values": 3} if mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=numpy_mode, **kwargs)
    top = np.array([-7, 0, 4], np.int64)
    left = np.array([2, -7, 3], np.int64)
    out = kernels.augment_crop(x, (6, 8), top, left, mode, np.full(3, 3, np.float32))
    for n in range(3):
        i, j = top[n] + pad, left[n] + pad
        np.testing.assert_array_equal(out[n], padded[n, :, i:i + 6, j:j + 8])


def windows_of(padded, size):
    h, w = size
    rows, cols = padded.shape[-2] - h + 1, padded.shape[-1] - w + 1
    return [(i, j) for i in range(rows) for j in range(cols)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_random_crop_returns_a_window_of_the_padded_image(mode):
    x = u8(n=6, h=6, w=5)
    y = T.RandomCrop((6, 5), padding=(2, 1), padding_mode=mode, fill=9, seed=3)(x)
    kwargs = {"constant_values": 9} if mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode=mode, **kwargs)
    positions = set()
    for n in range(6):
        hits = [(i, j) for i, j in windows_of(padded[n], (6, 5))
                if np.array_equal(padded[n, :, i:i + 6, j:j + 5], y[n])]
        assert hits, f"image {n} is not a window of its padded image"
        positions.add(hits[0])
    assert len(positions) > 1  # each image draws its own window


def test_full_size_crop_without_padding_is_identity():
    for x in (u8(), f32()):
        np.testing.assert_array_equal(T.RandomCrop((9, 11))(x), x)
        np.testing.assert_array_equal(T.CenterCrop((9, 11))(x), x)


def test_random_crop_pad_if_needed_and_too_large():
    x = u8(h=4, w=4)
    y = T.RandomCrop(7, pad_if_needed=True, seed=0)(x)
    assert y.shape == (4, 3, 7, 7)
    with pytest.raises(ValueError, match="RandomCrop: crop size .* larger than the padded image"):
        T.RandomCrop(9, padding=2)(x)


@pytest.mark.parametrize("size", [(5, 7), (9, 11), (4, 4), (12, 14), (10, 3)])
def test_center_crop_follows_torchvision(size):
    x = f32(h=9, w=11)
    th, tw = size
    y = T.CenterCrop(size)(x)
    pt, pl = max(0, (th - 9) // 2), max(0, (tw - 11) // 2)
    padded = np.pad(x, ((0, 0), (0, 0), (pt, max(0, th - 9) - pt), (pl, max(0, tw - 11) - pl)))
    top = int(round((padded.shape[2] - th) / 2.0))
    left = int(round((padded.shape[3] - tw) / 2.0))
    np.testing.assert_array_equal(y, padded[:, :, top:top + th, left:left + tw])


# ---------------------------------------------------------------------------- resize


@pytest.mark.parametrize("out", [(4, 5), (9, 11), (17, 30), (3, 20), (1, 1)])
def test_resize_uint8_matches_pillow(out):
    Image = pytest.importorskip("PIL.Image")
    x = u8(n=2, h=13, w=16, seed=4)
    y = T.Resize(out)(x)
    for n in range(2):
        ref = Image.fromarray(x[n].transpose(1, 2, 0)).resize(out[::-1], Image.BILINEAR)
        diff = np.abs(y[n].transpose(1, 2, 0).astype(int) - np.asarray(ref, int))
        assert diff.max() <= 1


@pytest.mark.parametrize("out", [(5, 6), (20, 9)])
def test_resize_float_matches_pillow_float_mode(out):
    Image = pytest.importorskip("PIL.Image")
    x = f32(n=1, c=2, h=13, w=16, seed=5)
    y = T.Resize(out)(x)
    for c in range(2):
        ref = np.asarray(Image.fromarray(x[0, c], "F").resize(out[::-1], Image.BILINEAR))
        np.testing.assert_allclose(y[0, c], ref, atol=2e-6)


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("out", [(6, 7), (25, 19)])
def test_resize_float_matches_torch_interpolate(antialias, out):
    torch = pytest.importorskip("torch")
    x = f32(n=2, c=3, h=14, w=12, seed=6)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=out, mode="bilinear",
                                          align_corners=False, antialias=antialias).numpy()
    np.testing.assert_allclose(T.Resize(out, antialias=antialias)(x), ref, atol=1e-5)


def test_resize_int_matches_shorter_side_and_same_size_is_identity():
    x = u8(h=10, w=25)
    assert T.Resize(4)(x).shape == (4, 3, 4, 10)
    assert T.Resize(4)(u8(h=25, w=10)).shape == (4, 3, 10, 4)
    np.testing.assert_array_equal(T.Resize((10, 25))(x), x)


def test_random_resized_crop_full_box_is_resize_and_boxes_match_pillow():
    Image = pytest.importorskip("PIL.Image")
    x = u8(n=3, h=12, w=16, seed=7)
    full = T.RandomResizedCrop((6, 8), scale=(1.0, 1.0), ratio=(16 / 12, 16 / 12), seed=1)(x)
    np.testing.assert_array_equal(full, T.Resize((6, 8))(x))
    boxes = np.array([[2, 3, 7, 9], [0, 0, 12, 16], [5, 10, 4, 6]], np.int64)
    y = kernels.augment_resized_crop(x, boxes, (5, 5))
    for n, (top, left, h, w) in enumerate(boxes):
        img = Image.fromarray(x[n].transpose(1, 2, 0)).crop((left, top, left + w, top + h))
        ref = np.asarray(img.resize((5, 5), Image.BILINEAR), int)
        assert np.abs(y[n].transpose(1, 2, 0).astype(int) - ref).max() <= 1


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    from kiln.data.transforms.geometry import resized_crop_boxes

    u = np.random.default_rng(0).random((500, 40))
    boxes = resized_crop_boxes(u, 100, 120, (0.2, 0.5), (0.5, 2.0))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 100).all()
    assert (left + w <= 120).all()
    area = h * w / 12000
    assert area.min() > 0.17 and area.max() < 0.53
    assert (w / h).min() > 0.45 and (w / h).max() < 2.2


# ---------------------------------------------------------------------------- affine


def bilinear_reference(x, theta, fill):
    """NumPy bilinear sampling of one image (C, H, W) at theta (2, 3) @ (j, i, 1)."""
    c, h, w = x.shape
    padded = np.empty((c, h + 4, w + 4), np.float64)
    padded[:] = np.asarray(fill, np.float64)[:, None, None]
    padded[:, 2:-2, 2:-2] = x
    i, j = np.mgrid[0:h, 0:w]
    xs = theta[0, 0] * j + theta[0, 1] * i + theta[0, 2]
    ys = theta[1, 0] * j + theta[1, 1] * i + theta[1, 2]
    out = np.empty((c, h, w))
    inside = (xs > -2) & (xs < w + 1) & (ys > -2) & (ys < h + 1)
    x0, y0 = np.floor(np.where(inside, xs, 0)), np.floor(np.where(inside, ys, 0))
    ax, ay = np.where(inside, xs, 0) - x0, np.where(inside, ys, 0) - y0
    x0, y0 = x0.astype(int) + 2, y0.astype(int) + 2
    for k in range(c):
        p = padded[k]
        top = (1 - ax) * p[y0, x0] + ax * p[y0, x0 + 1]
        bottom = (1 - ax) * p[y0 + 1, x0] + ax * p[y0 + 1, x0 + 1]
        out[k] = np.where(inside, (1 - ay) * top + ay * bottom, fill[k])
    return out


def test_affine_kernel_matches_numpy_bilinear():
    x = f32(n=2, h=8, w=10, seed=8)
    theta = np.array([[[0.9, 0.3, 1.5], [-0.2, 1.1, -2.0]],
                      [[1.3, -0.5, -3.0], [0.4, 0.8, 4.5]]])
    fill = np.array([0.25, 0.5, 0.75], np.float32)
    y = kernels.augment_affine(x, theta, fill)
    for n in range(2):
        np.testing.assert_allclose(y[n], bilinear_reference(x[n], theta[n], fill), atol=1e-5)


@pytest.mark.parametrize("make", [u8, f32])
def test_identity_affine_returns_the_input(make):
    x = make()
    t = T.RandomAffine(degrees=0, translate=(0, 0), scale=(1, 1), shear=0, fill=7)
    np.testing.assert_array_equal(t(x), x)


def test_affine_quarter_turn_is_clockwise_rotation():
    x = f32(n=2, h=7, w=7, seed=9)
    y = T.RandomAffine(degrees=(90, 90))(x)
    np.testing.assert_allclose(y, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-5)


def test_affine_translation_shifts_by_whole_pixels_and_fills():
    x = u8(n=64, h=10, w=10)
    y = T.RandomAffine(0, translate=(0.3, 0.0), fill=(1, 2, 3), seed=2)(x)
    shifts = set()
    for n in range(64):
        for s in range(-3, 4):
            expected = np.roll(x[n], s, axis=2)
            if s > 0:
                expected[:, :, :s] = np.array([1, 2, 3], np.uint8)[:, None, None]
            elif s < 0:
                expected[:, :, s:] = np.array([1, 2, 3], np.uint8)[:, None, None]
            if np.array_equal(y[n], expected):
                shifts.add(s)
                break
        else:
            pytest.fail(f"image {n} is not a whole-pixel horizontal shift")
    assert len(shifts) > 3


# ---------------------------------------------------------------------------- color


def gray_ref(x, byte):
    g = 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2] if x.shape[0] == 3 else x[0]
    g = g.astype(np.float32)
    return np.floor(g) if byte else g


def hue_ref(x, f, byte):
    """torchvision's _rgb2hsv / hue shift / _hsv2rgb in NumPy (float32)."""
    img = x / np.float32(255) if byte else x
    r, g, b = img
    maxc, minc = img.max(0), img.min(0)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, np.float32(1), maxc)
    crd = np.where(eqc, np.float32(1), cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4 + gc - rc)
    h = np.fmod((hr + hg + hb) / 6 + 1, 1)
    h = np.remainder(h + np.float32(f), 1).astype(np.float32)
    i = np.floor(h * 6)
    fr = h * 6 - i
    i = i.astype(int) % 6
    v = maxc
    p = np.clip(v * (1 - s), 0, 1)
    q = np.clip(v * (1 - s * fr), 0, 1)
    t = np.clip(v * (1 - s * (1 - fr)), 0, 1)
    table = np.stack([np.stack(c) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p),
                                            (p, p, t, v, v, q))])
    out = np.take_along_axis(table, i[None, None], axis=1)[:, 0]
    return np.floor(out * np.float32(255.999)) if byte else out


def jitter_ref(x, factors, order, byte):
    bound = np.float32(255 if byte else 1)
    x = x.astype(np.float32)

    def blend(x, other, f):
        y = np.clip(np.float32(f) * x + np.float32(1 - f) * other, 0, bound)
        return np.floor(y) if byte else y

    for op in order:
        if op == 0:
            x = blend(x, np.float32(0), factors[0])
        elif op == 1:
            x = blend(x, np.float32(gray_ref(x, byte).mean(dtype=np.float64)), factors[1])
        elif op == 2 and x.shape[0] == 3:
            x = blend(x, gray_ref(x, byte)[None], factors[2])
        elif op == 3 and x.shape[0] == 3:
            x = hue_ref(x, factors[3], byte)
    return x


@pytest.mark.parametrize("byte", [True, False])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, -1, -1], [3, -1, -1, -1]])
def test_color_jitter_kernel_matches_torchvision_semantics(byte, order):
    x = u8(n=5, h=12, w=13, seed=11) if byte else f32(n=5, h=12, w=13, seed=11)
    factors = np.array([[1.3, 0.7, 1.5, 0.2], [0.6, 1.4, 0.3, -0.45], [1.0, 1.0, 1.0, 0.0],
                        [0.0, 2.0, 0.0, 0.5], [1.8, 0.2, 2.0, -0.1]], np.float32)
    orders = np.tile(np.array(order, np.int8), (5, 1))
    y = kernels.augment_color_jitter(x, factors, orders)
    for n in range(5):
        ref = jitter_ref(x[n], factors[n], [o for o in order if o >= 0], byte)
        if byte:
            diff = np.abs(y[n].astype(int) - ref)
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01
        else:
            np.testing.assert_allclose(y[n], ref, atol=2e-5)


def test_color_jitter_brightness_matches_pillow():
    ImageEnhance = pytest.importorskip("PIL.ImageEnhance")
    Image = pytest.importorskip("PIL.Image")
    x = u8(n=1, h=10, w=10, seed=12)
    y = kernels.augment_color_jitter(x, np.array([[1.37, 1, 1, 0]], np.float32),
                                     np.array([[0, -1, -1, -1]], np.int8))
    ref = ImageEnhance.Brightness(Image.fromarray(x[0].transpose(1, 2, 0))).enhance(1.37)
    assert np.abs(y[0].transpose(1, 2, 0).astype(int) - np.asarray(ref, int)).max() <= 1


def test_color_jitter_off_is_identity_and_grayscale_images_work():
    x = u8()
    np.testing.assert_array_equal(T.ColorJitter()(x), x)
    g = u8(c=1)
    y = T.ColorJitter(0.5, 0.5, 0.5, 0.2, seed=1)(g)
    assert y.shape == g.shape and not np.array_equal(y, g)


def test_color_jitter_factors_per_image_in_range():
    x = np.full((300, 3, 2, 2), 100, np.uint8)
    y = T.ColorJitter(brightness=(0.5, 1.5), seed=4)(x)
    values = y[:, 0, 0, 0].astype(int)
    assert values.min() >= 50 and values.max() <= 150 and len(set(values)) > 50


# ---------------------------------------------------------------------------- PCA, normalize


def test_pca_lighting_fit_and_per_image_channel_offset():
    rng = np.random.default_rng(3)
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 1.0, 0.3], [0.0, 0.0, 0.4]])
    pixels = (mix @ rng.standard_normal((3, 20 * 8 * 8)) * 0.1 + 0.5).astype(np.float32)
    x = np.ascontiguousarray(pixels.reshape(3, 20, 8, 8).transpose(1, 0, 2, 3))
    t = T.PCALighting.fit(x, alphastd=0.1, seed=1)
    cov = np.cov(pixels.astype(np.float64))
    vals, vecs = np.linalg.eigh(cov)
    np.testing.assert_allclose(t.eigval, vals[::-1], rtol=1e-5)
    np.testing.assert_allclose(np.abs(t.eigvec), np.abs(vecs[:, ::-1]), atol=1e-5)
    y = t(x)
    shift = (y - x).reshape(20, 3, -1)
    np.testing.assert_allclose(shift, shift[..., :1].repeat(64, axis=2), atol=1e-6)
    assert np.abs(shift[..., 0]).max() > 0
    np.testing.assert_array_equal(T.PCALighting(0.0, t.eigval, t.eigvec)(x), x)
    b = (x * 255).astype(np.uint8)
    assert T.PCALighting(0.5, t.eigval, t.eigvec, seed=2)(b).dtype == np.uint8


@pytest.mark.parametrize("make,unit", [(u8, 255.0), (f32, 1.0)])
def test_normalize_and_to_float(make, unit):
    x = make()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    y = T.Normalize(mean, std)(x)
    ref = (x / unit - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, atol=1e-5)
    np.testing.assert_allclose(T.ToFloat()(x), x / unit, atol=1e-7)
    np.testing.assert_allclose(T.Normalize(0.5, 2.0)(x), (x / unit - 0.5) / 2, atol=1e-6)


# ---------------------------------------------------------------------------- erasing, cutout


def changed_box(before, after):
    diff = np.any(before != after, axis=0)
    if not diff.any():
        return None
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    return rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_random_erasing_fills_one_box_with_value():
    x = u8(n=50, h=20, w=20, seed=13) | 1  # never equal to the fill 0 below
    y = T.RandomErasing(p=1.0, value=(0, 0, 0), seed=3)(x)
    erased = 0
    for n in range(50):
        box = changed_box(x[n], y[n])
        if box is None:
            continue
        top, left, h, w = box
        assert (y[n, :, top:top + h, left:left + w] == 0).all()
        outside = np.ones((20, 20), bool)
        outside[top:top + h, left:left + w] = False
        np.testing.assert_array_equal(y[n][:, outside], x[n][:, outside])
        assert 0.02 * 400 * 0.5 <= h * w <= 0.33 * 400 * 1.5
        erased += 1
    assert erased > 40
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x), x)


def test_random_erasing_random_values_are_normal():
    x = np.zeros((20, 3, 30, 30), np.float32)
    y = T.RandomErasing(p=1.0, scale=(0.3, 0.3), value="random", seed=1)(x)
    noise = y[y != 0]
    assert noise.size > 1000 and abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1


def test_cutout_blanks_a_clipped_square():
    x = u8(n=40, h=12, w=12, seed=14) | 1
    y = T.Cutout(6, fill=0, seed=7)(x)
    for n in range(40):
        top, left, h, w = changed_box(x[n], y[n])
        assert h <= 6 and w <= 6
        assert (y[n, :, top:top + h, left:left + w] == 0).all()
        assert (h == 6 or top == 0 or top + h == 12) and (w == 6 or left == 0 or left + w == 12)


# ---------------------------------------------------------------------------- mixup, cutmix


def test_mixup_targets_sum_to_one_and_images_blend_rolled_pairs():
    x = f32(n=6, seed=15)
    labels = np.array([0, 1, 2, 3, 4, 5])
    y, targets = T.MixUp(alpha=0.4, num_classes=7, seed=2)(x, labels)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
    lam = targets[0, 0]
    np.testing.assert_allclose(targets[np.arange(6), labels], lam, atol=1e-6)
    np.testing.assert_allclose(targets[np.arange(6), np.roll(labels, 1)], 1 - lam, atol=1e-6)
    np.testing.assert_allclose(y, lam * x + (1 - lam) * np.roll(x, 1, axis=0), atol=1e-5)
    assert targets.dtype == np.float32


def test_cutmix_label_weight_is_the_pasted_area_share():
    n, h, w = 5, 17, 13
    x = np.repeat(np.arange(n, dtype=np.uint8), 3 * h * w).reshape(n, 3, h, w)
    labels = kiln.tensor(np.arange(n, dtype=np.int64))
    for seed in range(20):
        y, targets = T.CutMix(alpha=1.0, num_classes=n, seed=seed)(x, labels)
        assert isinstance(targets, kiln.Tensor)
        targets = targets.numpy()
        for k in range(n):
            pasted = (y[k] == (k - 1) % n).all(axis=0).sum() if n > 1 else 0
            assert targets[k, k] == pytest.approx(1 - pasted / (h * w), abs=1e-7)
            assert targets[k].sum() == pytest.approx(1.0, abs=1e-6)


def test_mixed_targets_feed_cross_entropy():
    x = f32(n=4)
    _, targets = T.CutMix(1.0, 3, seed=1)(x, np.array([0, 1, 2, 0]))
    z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    logits = kiln.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, kiln.tensor(targets))
    loss.backward()
    assert logits.grad.shape == (4, 3)
    ref = -(targets * (z - np.log(np.exp(z).sum(1, keepdims=True))))
    assert loss.item() == pytest.approx(ref.sum(1).mean(), rel=1e-5)


def test_compose_with_mixing_returns_images_and_targets():
    c = T.Compose([T.RandomHorizontalFlip(), T.ToFloat(), T.MixUp(1.0, 4)])
    images, targets = c(u8(), np.array([0, 1, 2, 3]), seed=1)
    assert images.dtype == np.float32 and targets.shape == (4, 4)


# ---------------------------------------------------------------------------- seeding, threads


def random_transforms():
    return [
        T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.RandomCrop(9, padding=3),
        T.RandomResizedCrop((7, 8)), T.ColorJitter(0.4, 0.4, 0.4, 0.2),
        T.RandomAffine(20, (0.2, 0.1), (0.8, 1.2), (-5, 5, -5, 5)), T.RandomErasing(0.7),
        T.Cutout(4), T.PCALighting(0.2, [0.2, 0.02, 0.005], np.eye(3)),
    ]


@pytest.mark.parametrize("index", range(9))
def test_seeded_and_independent_of_thread_count(index):
    x = u8(n=300, h=9, w=11, seed=16)
    outputs = []
    for threads in (1, 2):
        kiln.set_num_threads(threads)
        t = random_transforms()[index]
        kiln.manual_seed(5)
        outputs.append((t(x), t(x), t(x, seed=11)))
    kiln.set_num_threads(2)
    (a1, a2, a3), (b1, b2, b3) = outputs
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    np.testing.assert_array_equal(a3, b3)
    assert not np.array_equal(a1, a2)  # the stream moves on between calls


def test_seed_and_generator_arguments():
    x = u8(n=20)
    t = T.RandomCrop(9, padding=4, seed=3)
    a, b = t(x), t(x)
    t2 = T.RandomCrop(9, padding=4, seed=3)
    np.testing.assert_array_equal(t2(x), a)
    np.testing.assert_array_equal(t2(x), b)
    g = T.Generator(8)
    c = T.RandomCrop(9, padding=4)
    first = c(x, generator=g)
    state = g.get_state()
    second = c(x, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(c(x, generator=g), second)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(c(x, seed=1), c(x, seed=1))
    numpy_gen = c(x, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(numpy_gen, c(x, generator=np.random.default_rng(0)))


def test_compose_call_seed_drives_every_step_in_turn():
    c = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(9, padding=2)])
    x = u8(n=64)
    np.testing.assert_array_equal(c(x, seed=4), c(x, seed=4))
    assert not np.array_equal(c(x, seed=4), c(x, seed=5))


def test_dataloader_passes_per_batch_seeds():
    data = TensorDataset(kiln.tensor(u8(n=40)), kiln.tensor(np.arange(40)))
    tf = T.Compose([T.RandomCrop(9, padding=2), T.ColorJitter(0.3, 0.3)])
    runs = []
    for workers in (0, 2):
        loader = DataLoader(data, batch_size=8, transform=tf, num_workers=workers, seed=3)
        runs.append([images.numpy() for images, _ in loader])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_dataloader_with_a_mixing_compose_yields_soft_targets():
    data = TensorDataset(kiln.tensor(u8(n=12)), kiln.tensor(np.arange(12) % 3))
    tf = T.Compose([T.RandomHorizontalFlip(), T.ToFloat(), T.CutMix(1.0, 3)])
    images, targets = next(iter(DataLoader(data, batch_size=6, transform=tf, seed=0)))
    assert images.dtype == np.float32 and targets.shape == (6, 3)
    np.testing.assert_allclose(targets.numpy().sum(1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------- kinds and shapes


def test_tensor_in_tensor_out_and_single_images():
    x = u8()
    t = T.RandomCrop(9, padding=2, seed=0)
    out = t(kiln.tensor(x))
    assert isinstance(out, kiln.Tensor) and out.dtype == np.uint8
    one = T.CenterCrop(5)(x[0])
    assert one.shape == (3, 5, 5)
    grad = kiln.tensor(x.astype(np.float32), requires_grad=True)
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(grad).numpy(), x[:, :, ::-1])
    assert T.Resize([4])(x).shape == T.Resize(4)(x).shape == (4, 3, 4, 4)
    strided = x[:, :, ::2, ::2]
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(strided), strided[..., ::-1])


# ---------------------------------------------------------------------------- test-time crops


def test_five_and_ten_crop():
    x = f32(h=9, w=11)
    views = T.FiveCrop((4, 5))(x)
    np.testing.assert_array_equal(views[0], x[:, :, :4, :5])
    np.testing.assert_array_equal(views[1], x[:, :, :4, 6:])
    np.testing.assert_array_equal(views[2], x[:, :, 5:, :5])
    np.testing.assert_array_equal(views[3], x[:, :, 5:, 6:])
    np.testing.assert_array_equal(views[4], T.CenterCrop((4, 5))(x))
    ten = T.TenCrop((4, 5), vertical_flip=True)(x)
    assert len(ten) == 10
    np.testing.assert_array_equal(ten[5], x[:, :, ::-1][:, :, :4, :5])
    multi = T.MultiScaleCrop(4, [6, 9], crops="five")(x)
    assert len(multi) == 10 and all(v.shape == (4, 3, 4, 4) for v in multi)


def test_tta_predict_averages_softmax_and_restores_mode():
    kiln.manual_seed(0)
    model = kiln.nn.Sequential(kiln.nn.Flatten(), kiln.nn.Linear(3 * 4 * 4, 5))
    model.train()
    x = f32(n=3, h=6, w=6)
    crops = T.Compose([T.FiveCrop(4), T.Normalize(0.5, 0.25)])
    probs = T.tta_predict(model, x, crops)
    assert model.training and probs.shape == (3, 5)
    with kiln.no_grad():
        views = crops(x)
        ref = np.mean([F.softmax(model(kiln.tensor(v)), dim=1).numpy() for v in views], axis=0)
    np.testing.assert_allclose(probs.numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(probs.numpy().sum(1), 1.0, atol=1e-5)
    with pytest.raises(TypeError, match="tta_predict: views must be float32"):
        T.tta_predict(model, u8(h=4, w=4))


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("make,error,match", [
    (lambda: T.RandomHorizontalFlip(p=1.5), ValueError, "RandomHorizontalFlip: p must be a prob"),
    (lambda: T.RandomVerticalFlip(p=-0.1), ValueError, "RandomVerticalFlip: p must be a prob"),
    (lambda: T.RandomHorizontalFlip(p="x"), TypeError, "RandomHorizontalFlip: p must be a float"),
    (lambda: T.RandomCrop(-3), ValueError, "RandomCrop: size must be positive"),
    (lambda: T.RandomCrop(0), ValueError, "RandomCrop: size must be positive"),
    (lambda: T.RandomCrop(3.5), TypeError, "RandomCrop: size must be an int"),
    (lambda: T.RandomCrop(3, padding=-1), ValueError, "RandomCrop: padding must be non-negative"),
    (lambda: T.RandomCrop(3, padding=(1, 2, 3)), TypeError, "RandomCrop: padding must be"),
    (lambda: T.RandomCrop(3, padding_mode="wrap"), ValueError, "RandomCrop: padding_mode"),
    (lambda: T.RandomCrop(3, fill="red"), TypeError, "RandomCrop: fill must be"),
    (lambda: T.CenterCrop((2, 0)), ValueError, "CenterCrop: size must be positive"),
    (lambda: T.Resize(0), ValueError, "Resize: size must be >= 1"),
    (lambda: T.RandomResizedCrop(4, scale=(0.9, 0.1)), ValueError, "RandomResizedCrop: scale"),
    (lambda: T.RandomResizedCrop(4, ratio=(0, 1)), ValueError, "RandomResizedCrop: ratio"),
    (lambda: T.ColorJitter(brightness=-0.1), ValueError, "ColorJitter: brightness must be non-neg"),
    (lambda: T.ColorJitter(hue=0.7), ValueError, "ColorJitter: hue values must lie in"),
    (lambda: T.ColorJitter(contrast=(2, 1)), ValueError, "ColorJitter: contrast values"),
    (lambda: T.ColorJitter(saturation="a"), TypeError, "ColorJitter: saturation must be"),
    (lambda: T.PCALighting(-1, [1, 1, 1], np.eye(3)), ValueError, "PCALighting: alphastd"),
    (lambda: T.PCALighting(0.1, [1, 1], np.eye(3)), ValueError, "PCALighting: expected eigval"),
    (lambda: T.RandomAffine(-10), ValueError, "RandomAffine: degrees must be non-negative"),
    (lambda: T.RandomAffine(10, translate=(0.1, 1.5)), ValueError, "RandomAffine: translate"),
    (lambda: T.RandomAffine(10, scale=(0, 1)), ValueError, "RandomAffine: scale"),
    (lambda: T.RandomAffine(10, shear=(95, 100)), ValueError, "RandomAffine: shear"),
    (lambda: T.RandomErasing(p=2), ValueError, "RandomErasing: p must be a probability"),
    (lambda: T.RandomErasing(value="noise"), ValueError, "RandomErasing: value must be"),
    (lambda: T.RandomErasing(scale=(0.5, 1.5)), ValueError, "RandomErasing: scale"),
    (lambda: T.Cutout(-2), ValueError, "Cutout: size must be >= 0"),
    (lambda: T.Normalize((0.5, 0.5), (0.2, 0.0)), ValueError, "Normalize: mean and std must be"),
    (lambda: T.Normalize("a", 1), TypeError, "Normalize: mean must be"),
    (lambda: T.MixUp(alpha=0, num_classes=3), ValueError, "MixUp: alpha must be positive"),
    (lambda: T.CutMix(alpha=1, num_classes=0), ValueError, "CutMix: num_classes must be >= 1"),
    (lambda: T.CutMix(alpha=1, num_classes=2.5), TypeError, "CutMix: num_classes must be an int"),
    (lambda: T.Compose(T.ToFloat()), TypeError, "Compose: expected a sequence"),
    (lambda: T.Compose([1]), TypeError, "Compose: every step must be callable"),
    (lambda: T.RandomCrop(3, seed=1, generator=T.Generator(1)), ValueError,
     "RandomCrop: pass seed or generator"),
    (lambda: T.RandomCrop(3, seed=1.5), TypeError, "RandomCrop: seed must be an int"),
    (lambda: T.RandomCrop(3, generator=5), TypeError, "RandomCrop: generator must be"),
    (lambda: T.FiveCrop(3)(u8(h=2, w=8)), ValueError, "FiveCrop: crop size"),
    (lambda: T.MultiScaleCrop(8, [4]), ValueError, "MultiScaleCrop: scale 4 is smaller"),
    (lambda: T.MultiScaleCrop(4, [8], crops="six"), ValueError, "MultiScaleCrop: crops"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("t", [T.RandomHorizontalFlip(), T.RandomCrop(3), T.ColorJitter(0.1),
                               T.Normalize(0.5, 0.5), T.Resize(4), T.RandomAffine(5), T.Cutout(2),
                               T.RandomErasing(), T.RandomResizedCrop(3), T.FiveCrop(2)])
def test_bad_images(t):
    name = type(t).__name__
    with pytest.raises(TypeError, match=f"{name}: expected images of dtype uint8 or float32"):
        t(np.zeros((2, 3, 8, 8), np.float64))
    with pytest.raises(TypeError, match=f"{name}: expected images of dtype"):
        t(np.zeros((2, 3, 8, 8), np.int32))
    with pytest.raises(ValueError, match=f"{name}: expected images of shape"):
        t(np.zeros((3, 8, 8, 1, 1), np.uint8))
    with pytest.raises(ValueError, match=f"{name}: expected images of shape"):
        t(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match=f"{name}: expected images as a numpy.ndarray"):
        t([[[0]]])
    with pytest.raises(ValueError, match=f"{name}: expected C, H, W >= 1"):
        t(np.zeros((2, 3, 0, 8), np.uint8))


def test_bad_mixing_and_color_inputs():
    x = f32(n=4)
    with pytest.raises(ValueError, match=r"MixUp: labels must lie in \[0, 3\)"):
        T.MixUp(1.0, 3)(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="MixUp: expected class-index labels of shape"):
        T.MixUp(1.0, 5)(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="CutMix: expected labels as a numpy.ndarray"):
        T.CutMix(1.0, 5)(x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="CutMix: class-index labels need num_classes"):
        T.CutMix(1.0)(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="ColorJitter: expected images with 1 or 3 channels"):
        T.ColorJitter(0.2)(f32(c=2))
    with pytest.raises(ValueError, match="Normalize: mean has 2 values but the images have 3"):
        T.Normalize((0.1, 0.2), (1, 1))(x)
    with pytest.raises(TypeError, match="RandomErasing: value='random' needs float32"):
        T.RandomErasing(1.0, value="random")(u8())
    with pytest.raises(ValueError, match="RandomCrop: fill has 2 values"):
        T.RandomCrop(3, fill=(1, 2))(x)


def test_kernels_reject_bad_parameters():
    x = u8(n=2, h=5, w=5)
    with pytest.raises(ValueError, match=r"augment_box_fill: box 1 .* does not lie inside"):
        kernels.augment_box_fill(x, np.array([[0, 0, 1, 1], [3, 3, 3, 1]], np.int64), "value",
                                 value=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"augment_blend_pairs: partner\[0\] = 2"):
        kernels.augment_blend_pairs(x, np.array([2, 0], np.int64), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="augment_resized_crop: box 0"):
        kernels.augment_resized_crop(x, np.array([[0, 0, 0, 3], [0, 0, 5, 5]], np.int64), (3, 3))
    with pytest.raises(ValueError, match="augment_color_jitter: order"):
        kernels.augment_color_jitter(x, np.ones((2, 4), np.float32), np.full((2, 4), 7, np.int8))
    with pytest.raises(ValueError, match="augment_affine: the matrix of image 0"):
        theta = np.zeros((2, 2, 3))
        theta[0, 0, 0] = np.nan
        kernels.augment_affine(x, theta, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"augment_crop: expected top of shape \(2,\)"):
        kernels.augment_crop(x, (2, 2), np.zeros(3, np.int64), np.zeros(2, np.int64), "edge",
                             np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="augment_flip: expected horizontal of dtype uint8"):
        kernels.augment_flip(x, np.ones(2, np.int64))
    with pytest.raises(ValueError, match="augment_uniform: expected n, k >= 0"):
        kernels.augment_uniform(-1, 2, 0, 0)


# ----------------------------------------------------------------- ElasticTransform
def test_elastic_field_is_torchvisions_reflect_padded_gaussian_blur():
    torch = pytest.importorskip("torch")
    from kiln.data.transforms.geometry import _gaussian_blur

    rng = np.random.default_rng(0)
    fields = rng.uniform(-1, 1, (3, 12, 9))
    for sigma in (0.7, 1.5, 4.0):  # 4.0: a 33-tap kernel, wider than the image
        taps = int(8 * sigma + 1)
        taps += 1 - taps % 2
        t = np.arange(taps) - taps // 2
        kernel = np.exp(-0.5 * (t / sigma) ** 2)
        kernel = torch.tensor(kernel / kernel.sum())
        x = torch.tensor(fields)[:, None]
        half = taps // 2
        # Reflect padding as numpy's (repeated when wider than the image).
        x = torch.tensor(np.pad(x.numpy(), ((0, 0), (0, 0), (half, half), (half, half)),
                                mode="reflect"))
        x = torch.nn.functional.conv2d(x, kernel.view(1, 1, taps, 1))
        x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, taps))
        np.testing.assert_allclose(_gaussian_blur(fields, sigma), x[:, 0].numpy(), atol=1e-12)
    assert _gaussian_blur(fields, 0.0) is fields


def test_elastic_sampling_is_grid_sample_bilinear_with_fill_outside():
    torch = pytest.importorskip("torch")
    from kiln.data.transforms.geometry import _bilinear

    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (2, 3, 7, 10)).astype(np.float32)
    rows, cols = np.meshgrid(np.arange(7), np.arange(10), indexing="ij")
    ys = rows + rng.uniform(-3, 3, (2, 7, 10))
    xs = cols + rng.uniform(-3, 3, (2, 7, 10))
    grid = torch.tensor(np.stack([(2 * xs + 1) / 10 - 1, (2 * ys + 1) / 7 - 1], -1))
    want = torch.nn.functional.grid_sample(torch.tensor(images, dtype=torch.float64), grid,
                                           mode="bilinear", padding_mode="zeros",
                                           align_corners=False).numpy()
    got = _bilinear(images, ys, xs, np.zeros(3, np.float32))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # fill: an outside neighbour reads the fill value instead of 0 (a constant image
    # of the fill value stays constant wherever it is sampled).
    flat = np.full((1, 2, 7, 10), 0.25, np.float32)
    out = _bilinear(flat, ys[:1], xs[:1], np.array([0.25, 0.25], np.float32))
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_elastic_transform_draws_per_image_fields_and_keeps_dtype_and_identity():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    out = T.ElasticTransform(alpha=34.0, sigma=4.0, seed=0)(images)
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert not np.array_equal(out, images)
    same = np.repeat(images[:1], 2, axis=0)
    a, b = T.ElasticTransform(alpha=34.0, sigma=4.0, seed=0)(same)
    assert not np.array_equal(a, b)  # each image its own field
    again = T.ElasticTransform(alpha=34.0, sigma=4.0, seed=0)(images)
    assert np.array_equal(out, again)  # seeded: reproducible
    assert np.array_equal(T.ElasticTransform(alpha=0.0)(images), images)
    floats = images.astype(np.float32) / 255
    single = T.ElasticTransform(alpha=(20.0, 40.0), sigma=(3.0, 5.0), seed=1)(floats[0])
    assert single.dtype == np.float32 and single.shape == (1, 28, 28)
    tensor = T.ElasticTransform(seed=0)(kiln.tensor(floats))
    assert isinstance(tensor, kiln.Tensor) and tensor.shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="ElasticTransform: alpha and sigma must be >= 0"):
        T.ElasticTransform(alpha=-1.0)
    for bad in ({"sigma": float("nan")}, {"alpha": (1.0, float("inf"))}):
        with pytest.raises(ValueError, match="ElasticTransform: alpha and sigma must be >= 0 and "
                                             "finite"):
            T.ElasticTransform(**bad)
    with pytest.raises(TypeError, match="ElasticTransform: sigma must be a pair"):
        T.ElasticTransform(sigma=(1.0, 2.0, 3.0))
