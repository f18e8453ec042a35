"""kiln.vision.transforms (torchvision.transforms under ``kiln run``): one PIL image or
one (C, H, W) tensor per call, torchvision's arguments, outputs and errors. Exact
outputs for the deterministic transforms (references in NumPy, PyTorch or Pillow),
bounds and frequencies for the random ones, and kiln.manual_seed repeatability."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.vision import transforms as T

Image = pytest.importorskip("PIL.Image")


def rgb(h: int = 9, w: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pil(h: int = 9, w: int = 12, seed: int = 0):
    return Image.fromarray(rgb(h, w, seed))


def chw(image) -> np.ndarray:
    """A PIL image's pixels as (C, H, W)."""
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def test_to_tensor_scales_uint8_and_keeps_other_arrays():
    x = T.ToTensor()(pil())
    assert isinstance(x, kiln.Tensor) and x.dtype == kiln.float32 and x.shape == (3, 9, 12)
    np.testing.assert_array_equal(x.numpy(), rgb().transpose(2, 0, 1).astype(np.float32) / 255)
    np.testing.assert_array_equal(T.ToTensor()(rgb()).numpy(), x.numpy())
    gray = T.ToTensor()(Image.fromarray(rgb()[..., 0]))
    assert gray.shape == (1, 9, 12)
    palette = pil().convert("P")  # torchvision: the palette indices / 255
    np.testing.assert_array_equal(T.ToTensor()(palette).numpy()[0],
                                  np.asarray(palette).astype(np.float32) / 255)
    assert T.ToTensor()(pil().convert("I")).dtype == kiln.int32
    floats = np.random.default_rng(1).random((4, 5, 2))
    kept = T.ToTensor()(floats)
    assert kept.dtype == kiln.float64
    np.testing.assert_array_equal(kept.numpy(), floats.transpose(2, 0, 1))
    assert T.ToTensor()(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()([1, 2])
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 4"):
        T.ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_pil_to_tensor_convert_dtype_and_back_to_pil():
    x = T.PILToTensor()(pil())
    assert x.dtype == kiln.uint8
    np.testing.assert_array_equal(x.numpy(), rgb().transpose(2, 0, 1))
    f = T.ConvertImageDtype(kiln.float32)(x)
    np.testing.assert_array_equal(f.numpy(), x.numpy().astype(np.float32) / 255)
    back = T.ConvertImageDtype(kiln.uint8)(f)
    np.testing.assert_array_equal(back.numpy(), (f.numpy() * (255 + 1 - 1e-3)).astype(np.uint8))
    np.testing.assert_array_equal(back.numpy(), x.numpy())  # the round trip is exact
    with pytest.raises(TypeError, match="pic should be PIL Image"):
        T.PILToTensor()(rgb())
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        T.ConvertImageDtype(kiln.int64)(f)
    image = T.ToPILImage()(f)
    assert image.mode == "RGB" and image.size == (12, 9)
    np.testing.assert_array_equal(chw(image), (f.numpy() * 255).astype(np.uint8))
    assert T.ToPILImage()(f[:1]).mode == "L"
    assert T.ToPILImage()(rgb()).mode == "RGB"
    with pytest.raises(ValueError, match="should not have > 4 channels"):
        T.ToPILImage()(kiln.zeros(5, 2, 2))


def test_normalize_as_torchvision(torch):
    x = T.ToTensor()(pil())
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    expected = torch.from_numpy(x.numpy().copy())
    expected.sub_(torch.tensor(mean).view(-1, 1, 1)).div_(torch.tensor(std).view(-1, 1, 1))
    y = T.Normalize(mean, std)(x)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(x.numpy(), y.numpy())
    same = T.Normalize(mean, std, inplace=True)(x)
    assert same is x
    np.testing.assert_allclose(x.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        T.Normalize(mean, std)(pil())
    with pytest.raises(ValueError, match="mean and std must be finite and std non-zero"):
        T.Normalize(mean, (1.0, 0.0, 1.0))


@pytest.mark.parametrize("size", [5, (4, 7), (11, 14)])
def test_center_crop_is_torchvision_window(size):
    th, tw = (size, size) if isinstance(size, int) else size
    image = rgb()
    out = T.CenterCrop(size)(Image.fromarray(image))
    assert out.size == (tw, th)
    padded = np.zeros((max(9, th) + 2, max(12, tw) + 2, 3), np.uint8)
    # torchvision: pad (zero) when the crop is larger, then the window at round((h - th) / 2)
    ph, pw = max(0, th - 9), max(0, tw - 12)
    padded = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    h, w = padded.shape[:2]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    np.testing.assert_array_equal(np.asarray(out), padded[top:top + th, left:left + tw])
    tensor = T.CenterCrop(size)(T.PILToTensor()(Image.fromarray(image)))
    np.testing.assert_array_equal(tensor.numpy(), chw(out))


@pytest.mark.parametrize("mode, np_mode", [("constant", "constant"), ("edge", "edge"),
                                           ("reflect", "reflect")])
def test_pad_as_numpy(mode, np_mode):
    image = rgb()
    out = T.Pad((1, 2, 3, 4), fill=7 if mode == "constant" else 0, padding_mode=mode)(
        Image.fromarray(image))
    kwargs = {"constant_values": 7} if mode == "constant" else {}
    expected = np.pad(image, ((2, 4), (1, 3), (0, 0)), mode=np_mode, **kwargs)
    np.testing.assert_array_equal(np.asarray(out), expected)
    assert T.Pad(2)(kiln.zeros(3, 4, 5)).shape == (3, 8, 9)
    assert T.Pad([1, 2])(kiln.zeros(3, 4, 5)).shape == (3, 8, 7)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        T.Pad(1, padding_mode="wrap")


def test_resize_sizes_and_interpolations(torch):
    assert T.Resize(6)(pil(9, 12)).size == (8, 6)  # shorter side 6, longer truncated
    assert T.Resize((5, 7))(pil()).size == (7, 5)
    assert T.Resize(6, max_size=7)(pil(9, 12)).size == (7, 5)
    assert T.Resize([6])(kiln.zeros(3, 12, 9)).shape == (3, 8, 6)
    x = torch.rand(1, 3, 9, 12)
    for mode, name in ((T.InterpolationMode.NEAREST, "nearest"),
                       (T.InterpolationMode.NEAREST_EXACT, "nearest-exact")):
        ours = T.Resize((5, 17), interpolation=mode)(kiln.Tensor(x[0].numpy()))
        theirs = torch.nn.functional.interpolate(x, size=(5, 17), mode=name)[0]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(NotImplementedError, match="not BICUBIC"):
        T.Resize(4, interpolation=T.InterpolationMode.BICUBIC)
    with pytest.raises(ValueError, match="max_size = 4 must be strictly greater"):
        T.Resize(6, max_size=4)
    with pytest.raises(TypeError, match="argument interpolation should be a InterpolationMode"):
        T.Resize(4, interpolation="bilinear")


def test_resize_bilinear_pil_is_pillows():
    image = pil(30, 40)
    ours = np.asarray(T.Resize((12, 17))(image)).astype(int)
    theirs = np.asarray(image.resize((17, 12), Image.BILINEAR)).astype(int)
    assert np.abs(ours - theirs).max() <= 1


def test_grayscale_weights():
    x = T.ToTensor()(pil())
    r, g, b = x.numpy()
    gray = T.Grayscale()(x)
    assert gray.shape == (1, 9, 12)
    np.testing.assert_allclose(gray.numpy()[0], 0.2989 * r + 0.587 * g + 0.114 * b, rtol=1e-6)
    u8 = T.PILToTensor()(pil()).numpy().astype(np.float32)
    expected = (0.2989 * u8[0] + 0.587 * u8[1] + 0.114 * u8[2]).astype(np.uint8)  # truncated
    np.testing.assert_array_equal(T.Grayscale()(T.PILToTensor()(pil())).numpy()[0], expected)
    three = T.Grayscale(3)(x).numpy()
    assert three.shape == (3, 9, 12) and (three == three[:1]).all()
    image = T.Grayscale()(pil())
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(pil().convert("L")))
    assert T.Grayscale(num_output_channels=3)(pil()).mode == "RGB"
    assert T.RandomGrayscale(p=1.0)(pil()).mode == "RGB"
    np.testing.assert_array_equal(T.RandomGrayscale(p=0.0)(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="num_output_channels should be either 1 or 3"):
        T.Grayscale(2)


def test_flips_and_their_frequency():
    x = T.PILToTensor()(pil())
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x).numpy(), x.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(x).numpy(), x.numpy()[:, ::-1])
    np.testing.assert_array_equal(np.asarray(T.RandomHorizontalFlip(1.0)(pil())),
                                  rgb()[:, ::-1])
    kiln.manual_seed(0)
    flipped = sum(not np.array_equal(T.RandomHorizontalFlip()(x).numpy(), x.numpy())
                  for _ in range(400))
    assert 150 < flipped < 250


def test_random_crop_is_a_window_of_the_padded_image():
    image = rgb(8, 8)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    windows = {(i, j) for i in range(9) for j in range(9)}
    seen = set()
    kiln.manual_seed(1)
    for _ in range(60):
        out = np.asarray(T.RandomCrop(8, padding=4)(Image.fromarray(image)))
        where = [(i, j) for i, j in windows if np.array_equal(padded[i:i + 8, j:j + 8], out)]
        assert where
        seen.add(where[0])
    assert len(seen) > 20
    assert T.RandomCrop(10, pad_if_needed=True)(kiln.zeros(3, 8, 8)).shape == (3, 10, 10)


def test_seeding_repeats_the_draws():
    steps = T.Compose([T.RandomResizedCrop(6), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4,
                       0.4, 0.1), T.RandomRotation(20), T.GaussianBlur(3), T.ToTensor(),
                       T.RandomErasing(1.0)])
    kiln.manual_seed(5)
    first = [steps(pil(seed=s)).numpy() for s in range(3)]
    kiln.manual_seed(5)
    again = [steps(pil(seed=s)).numpy() for s in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert a.shape == (3, 6, 6) and a.dtype == np.float32
        assert 0.0 <= a.min() and a.max() <= 1.0


def test_rotation_and_affine_nearest():
    x = T.PILToTensor()(pil(7, 7))
    # torchvision's rotate turns counter-clockwise for a positive angle
    turned = T.RandomRotation((90, 90))(x).numpy()
    np.testing.assert_array_equal(turned, np.rot90(x.numpy(), 1, axes=(1, 2)))
    kiln.manual_seed(2)
    shifted = T.RandomAffine(0, translate=(0.3, 0.3), fill=9)(x).numpy()
    values = set(np.unique(shifted)) - {9}
    assert values <= set(np.unique(x.numpy()))  # nearest: no new values
    with pytest.raises(NotImplementedError, match="expand=True"):
        T.RandomRotation(10, expand=True)
    assert T.RandomRotation(10, interpolation=T.InterpolationMode.BILINEAR)(pil()).size == (12, 9)


def test_gaussian_blur_against_torch(torch):
    x = T.ToTensor()(pil(10, 11))
    sigma, k = 1.3, 5
    half = (k - 1) * 0.5
    pdf = torch.exp(-0.5 * (torch.linspace(-half, half, k, dtype=torch.float64) / sigma) ** 2)
    kernel1d = pdf / pdf.sum()
    kernel = (kernel1d[:, None] * kernel1d[None, :]).expand(3, 1, k, k)
    padded = torch.nn.functional.pad(torch.from_numpy(x.numpy()).double()[None],
                                     [k // 2] * 4, mode="reflect")
    expected = torch.nn.functional.conv2d(padded, kernel, groups=3)[0]
    ours = T.GaussianBlur(k, sigma=sigma)(x)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-6)
    assert T.GaussianBlur((3, 5))(pil()).size == (12, 9)
    with pytest.raises(ValueError, match="odd and positive"):
        T.GaussianBlur(4)
    with pytest.raises(ValueError, match="sigma values should be positive"):
        T.GaussianBlur(3, sigma=(2.0, 1.0))


def test_containers():
    x = T.PILToTensor()(pil())
    flip = T.RandomHorizontalFlip(1.0)
    np.testing.assert_array_equal(T.RandomApply([flip], p=1.0)(x).numpy(), x.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(T.RandomApply([flip], p=0.0)(x).numpy(), x.numpy())
    chosen = T.RandomChoice([T.Pad(1), T.Pad(2)], p=[0.0, 1.0])
    assert chosen(x).shape == (3, 13, 16)
    assert T.RandomOrder([T.Pad(1), T.Pad(2)])(x).shape == (3, 15, 18)
    assert T.Lambda(lambda img: img.shape)(x) == (3, 9, 12)
    with pytest.raises(TypeError, match="Argument lambd should be callable, got 'int'"):
        T.Lambda(3)
    with pytest.raises(ValueError, match="Length of p doesn't match"):
        T.RandomChoice([flip], p=[0.5, 0.5])
    crops = T.FiveCrop(4)(pil())
    assert len(crops) == 5 and all(c.size == (4, 4) for c in crops)
    np.testing.assert_array_equal(np.asarray(crops[0]), rgb()[:4, :4])
    assert len(T.TenCrop(4)(T.ToTensor()(pil()))) == 10


def test_random_erasing_inplace_and_color_jitter_bounds():
    x = T.ToTensor()(pil())
    before = x.numpy().copy()
    kiln.manual_seed(3)
    out = T.RandomErasing(p=1.0, value=0, inplace=True)(x)
    assert out is x and (x.numpy() != before).any() and (x.numpy() == 0).any()
    kiln.manual_seed(3)
    y = T.ToTensor()(pil())
    np.testing.assert_array_equal(T.RandomErasing(p=1.0, value=0)(y).numpy(), x.numpy())
    jittered = T.ColorJitter(0.5, 0.5, 0.5, 0.2)(T.ToTensor()(pil())).numpy()
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    assert T.ColorJitter(0.5, 0.5, 0.5, 0.2)(pil()).mode == "RGB"


def test_cifar_pipeline_on_one_pil_image():
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    x = tf(pil(32, 32))
    assert isinstance(x, kiln.Tensor) and x.shape == (3, 32, 32) and x.dtype == kiln.float32
    with pytest.raises(TypeError, match="PIL images of mode 'P' are not supported"):
        T.RandomCrop(4)(pil().convert("P"))


def test_functional_as_torchvision(torch):
    from kiln.vision import functional as F

    image, x = rgb(), T.ToTensor()(pil())
    np.testing.assert_array_equal(np.asarray(F.crop(pil(), 1, 2, 4, 5)), image[1:5, 2:7])
    outside = F.crop(x, -1, 10, 3, 4).numpy()  # zeros beyond the image, as torchvision
    assert (outside[:, 0] == 0).all() and (outside[:, :, 2:] == 0).all()
    np.testing.assert_array_equal(outside[:, 1:, :2], x.numpy()[:, :2, 10:])
    t = torch.from_numpy(x.numpy().copy())[None]
    nearest = F.resized_crop(x, 1, 2, 6, 8, [4, 11], interpolation=F.InterpolationMode.NEAREST)
    expected = torch.nn.functional.interpolate(t[:, :, 1:7, 2:10], size=(4, 11), mode="nearest")
    np.testing.assert_array_equal(nearest.numpy(), expected[0].numpy())
    square = T.ToTensor()(pil(7, 7))
    np.testing.assert_array_equal(F.rotate(square, 90).numpy(),
                                  np.rot90(square.numpy(), 1, axes=(1, 2)))
    shifted = F.affine(x, angle=0, translate=[2, 1], scale=1.0, shear=0, fill=1.0).numpy()
    np.testing.assert_array_equal(shifted[:, 1:, 2:], x.numpy()[:, :-1, :-2])
    assert (shifted[:, 0] == 1).all() and (shifted[:, :, :2] == 1).all()
    np.testing.assert_allclose(F.adjust_brightness(x, 0.5).numpy(), x.numpy() * 0.5, atol=1e-6)
    np.testing.assert_allclose(F.adjust_brightness(x, 3.0).numpy(),
                               np.minimum(x.numpy() * 3, 1), atol=1e-6)
    assert F.get_dimensions(pil()) == [3, 9, 12] and F.get_image_size(x) == [12, 9]
    erased = F.erase(x, 1, 2, 3, 4, 0.25)
    assert (erased.numpy()[:, 1:4, 2:6] == 0.25).all() and erased is not x
    assert F.erase(x, 0, 0, 1, 1, 0, inplace=True) is x and x.numpy()[0, 0, 0] == 0
    np.testing.assert_array_equal(F.hflip(x).numpy(), x.numpy()[:, :, ::-1])
    np.testing.assert_allclose(F.gaussian_blur(x, 3).numpy(),  # torchvision's default sigma
                               T.GaussianBlur(3, sigma=3 * 0.15 + 0.35)(x).numpy(), atol=1e-7)
    taps = np.exp(-0.5 * (np.arange(-1, 2) / 2.0) ** 2)
    taps /= taps.sum()
    rows = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1)), mode="reflect")
    along_x = sum(taps[j] * rows[:, :, j:j + 12] for j in range(3))  # ky = 1: rows only
    np.testing.assert_allclose(F.gaussian_blur(x, [3, 1], [2.0, 1.0]).numpy(), along_x,
                               atol=1e-6)
    with pytest.raises(TypeError, match="Input tensor should be a float tensor"):
        F.normalize(T.PILToTensor()(pil()), [0.5] * 3, [0.5] * 3)
    with pytest.raises(TypeError, match="img should be PIL Image"):
        F.to_grayscale(x)


def test_compose_converts_a_pil_image_once_and_hands_pil_to_other_callables():
    seen = []
    steps = T.Compose([T.CenterCrop(6), T.Lambda(lambda im: seen.append(im) or im), T.Pad(1),
                       T.RandomHorizontalFlip(0.0)])
    out = steps(pil())
    assert isinstance(seen[0], Image.Image) and seen[0].size == (6, 6)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (8, 8)
    np.testing.assert_array_equal(np.asarray(out)[1:-1, 1:-1],
                                  np.asarray(T.CenterCrop(6)(pil())))
    views = T.Compose([T.FiveCrop(4), T.Lambda(lambda im: im)])(pil())
    assert len(views) == 5 and all(isinstance(v, Image.Image) for v in views)
    gray = T.Compose([T.RandomCrop(8), T.Grayscale(), T.PILToTensor()])(pil())
    assert gray.shape == (1, 8, 8) and gray.dtype == kiln.uint8
