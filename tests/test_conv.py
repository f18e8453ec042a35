"""conv2d and conv_transpose2d: forward and every gradient against PyTorch, float64
finite-difference gradchecks (no PyTorch needed), the raw kernels, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import parity, rand, rel_err, torch_f, torch_or_skip

import kiln
import kiln.nn.functional as F
from kiln import kernels
from kiln.autograd import gradcheck

# input shape, weight shape, bias, stride, padding, dilation, groups
CONV_CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), True, 1, 1, 1, 1),
    ((1, 3, 8, 8), (5, 3, 1, 1), True, 1, 0, 1, 1),  # batch 1, 1x1
    ((2, 4, 15, 13), (6, 4, 7, 7), True, 1, 3, 1, 1),  # 7x7
    ((2, 3, 17, 17), (4, 3, 7, 7), False, 2, 3, 1, 1),  # 7x7 stride 2 (ResNet stem)
    ((3, 4, 11, 10), (8, 4, 3, 3), True, 2, 1, 1, 1),
    ((2, 5, 13, 14), (3, 5, 3, 3), True, 3, 2, 1, 1),
    ((2, 4, 12, 12), (4, 4, 3, 3), True, 1, 2, 2, 1),  # dilation 2
    ((1, 4, 13, 7), (6, 2, 3, 5), True, (2, 3), (1, 2), (2, 1), 2),  # asymmetric pairs
    ((2, 8, 10, 9), (8, 2, 3, 3), True, 1, 1, 1, 4),  # groups 4
    ((2, 6, 9, 9), (6, 1, 3, 3), True, 1, 1, 1, 6),  # depthwise
    ((2, 6, 9, 9), (12, 1, 5, 5), False, 2, 2, 1, 6),  # depthwise, multiplier 2
    ((1, 3, 5, 5), (2, 3, 5, 5), True, 1, 0, 1, 1),  # kernel = input: 1x1 output
    ((2, 3, 1, 9), (4, 3, 1, 3), True, 1, (0, 1), 1, 1),  # one row
    ((1, 2, 4, 4), (3, 2, 3, 3), True, 1, 4, 1, 1),  # padding larger than the kernel
    ((2, 17, 23, 19), (33, 17, 3, 3), True, 1, 1, 1, 1),  # odd sizes, several blocks
    ((3, 16, 20, 20), (70, 16, 3, 3), True, 1, 1, 1, 1),  # K not a multiple of 16
    ((2, 32, 8, 8), (64, 32, 3, 3), False, 1, 1, 1, 1),
    ((2, 6, 14, 14), (16, 6, 5, 5), True, 1, 0, 1, 1),  # LeNet
    ((2, 1, 28, 28), (6, 1, 5, 5), True, 1, 2, 1, 1),  # LeNet's first layer (one channel)
    ((2, 3, 7, 37), (6, 1, 3, 3), True, 1, 1, (2, 1), 3),  # depthwise rows of 3 segments
    ((2, 4, 9, 9), (4, 4, 2, 4), True, (1, 2), (1, 0), (3, 1), 1),  # even kernel
    ((1, 4, 10, 12), (8, 2, 3, 3), True, 2, 1, 2, 2),
    ((3, 24, 13, 9), (40, 24, 3, 3), True, 1, 0, 1, 1),  # Winograd F(4x4, 3x3), no padding
    ((2, 8, 16, 12), (32, 8, 4, 4), True, 2, 1, 1, 1),  # 4x4 stride 2 (a DCGAN discriminator)
]


@pytest.mark.parametrize("xs, ws, has_bias, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d_matches_torch(xs, ws, has_bias, stride, padding, dilation, groups):
    b = rand((ws[0],), 2) if has_bias else None
    parity(F.conv2d, torch_f().conv2d, [rand(xs), rand(ws, 1), b],
           kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note on its own cost
@pytest.mark.parametrize("padding, stride, dilation", [
    ("same", 1, 1), ("same", 1, 2), ("same", 1, (2, 3)), ("valid", 2, 1), ("valid", 1, 2),
])
def test_conv2d_string_padding_matches_torch(padding, stride, dilation):
    # A 4x3 kernel: an odd total padding along H puts the extra row at the bottom.
    parity(F.conv2d, torch_f().conv2d, [rand((2, 4, 9, 8)), rand((6, 2, 4, 3), 1), rand((6,), 2)],
           kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=2))


def test_conv2d_unbatched_matches_torch():
    parity(F.conv2d, torch_f().conv2d, [rand((3, 10, 9)), rand((5, 3, 3, 3), 1), rand((5,), 2)],
           kwargs=dict(stride=2, padding=1))


def test_conv2d_float64_matches_torch():
    parity(F.conv2d, torch_f().conv2d, [rand((2, 4, 9, 9), 0, np.float64),
           rand((6, 2, 3, 3), 1, np.float64), rand((6,), 2, np.float64)],
           kwargs=dict(stride=2, padding=1, groups=2), tol=1e-12)


def test_conv2d_noncontiguous_input():
    torch = torch_or_skip()
    x = rand((2, 3, 10, 12)).transpose(0, 1, 3, 2)  # a view, not C-contiguous
    w = rand((4, 3, 3, 3), 1)
    y = F.conv2d(kiln.tensor(x), kiln.tensor(w), padding=1)
    ref = torch.nn.functional.conv2d(torch.tensor(np.ascontiguousarray(x)), torch.tensor(w),
                                     padding=1)
    assert rel_err(y.numpy(), ref.numpy()) < 1e-4


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_conv2d_nonfinite_input_spreads_as_torch(bad):
    """An Inf or NaN reaches exactly the outputs (and weight gradients) whose windows
    hold it, as in PyTorch: a layer the Winograd path would take (16 -> 16 channels)
    is recomputed by the direct sum, since the transforms would spread the value over
    whole 4x4 tiles."""
    torch = torch_or_skip()
    x, w, g = rand((2, 16, 12, 12)), rand((16, 16, 3, 3), 1), rand((2, 16, 12, 12), 2)
    x[0, 3, 5, 7] = bad
    xk, wk = kiln.tensor(x, requires_grad=True), kiln.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yk, yt = F.conv2d(xk, wk, padding=1), torch.nn.functional.conv2d(xt, wt, padding=1)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    for k, t in ((yk.detach().numpy(), yt.detach().numpy()), (wk.grad.numpy(), wt.grad.numpy())):
        np.testing.assert_array_equal(np.isnan(k), np.isnan(t))
        np.testing.assert_array_equal(np.isinf(k), np.isinf(t))
        np.testing.assert_allclose(k[np.isfinite(t)], t[np.isfinite(t)], rtol=1e-4, atol=1e-4)


def test_conv2d_winograd_switch():
    """kiln.backends.cpu.conv.allow_winograd: off, a layer the Winograd path takes runs
    the direct sums (error of float32's order against float64, and different bits from
    the Winograd result; the input gradient too); on again by default."""
    conv = kiln.backends.cpu.conv
    x, w, g = rand((2, 32, 12, 12)), rand((32, 32, 3, 3), 1), rand((2, 32, 12, 12), 2)
    ref = F.conv2d(kiln.tensor(x.astype(np.float64)), kiln.tensor(w.astype(np.float64)),
                   padding=1).numpy()

    def run() -> tuple[np.ndarray, np.ndarray]:
        xk = kiln.tensor(x, requires_grad=True)
        y = F.conv2d(xk, kiln.tensor(w), padding=1)
        y.backward(kiln.tensor(g))
        return y.detach().numpy(), xk.grad.numpy()

    assert conv.allow_winograd is True
    fast = run()
    try:
        conv.allow_winograd = False
        assert conv.allow_winograd is False
        exact = run()
    finally:
        conv.allow_winograd = True
    # mean errors against float64, over the output's root mean square: direct about
    # 2e-7, Winograd about 8e-7 (worst elements 2e-6 and 2e-5)
    scale = np.sqrt(np.mean(ref ** 2))
    assert np.abs(exact[0] - ref).mean() < 4e-7 * scale
    assert np.abs(exact[0] - ref).max() < 1e-5 * scale
    assert not np.array_equal(fast[0], exact[0]) and not np.array_equal(fast[1], exact[1])
    np.testing.assert_allclose(fast[0], ref, atol=1e-4 * scale)
    with pytest.raises(TypeError, match="allow_winograd.*bool"):
        conv.allow_winograd = 0


def test_conv2d_thread_counts_agree():
    x, w = rand((3, 8, 12, 12)), rand((16, 8, 3, 3), 1)
    threads = kiln.get_num_threads()
    try:
        out = []
        for n in (1, 2, 3):
            kiln.set_num_threads(n)
            out.append(F.conv2d(kiln.tensor(x), kiln.tensor(w), padding=1).numpy())
    finally:
        kiln.set_num_threads(threads)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


# input shape, weight shape, bias, stride, padding, output_padding, groups, dilation
TRANSPOSE_CASES = [
    ((2, 4, 7, 6), (4, 3, 3, 3), True, 1, 0, 0, 1, 1),
    ((2, 4, 7, 6), (4, 3, 3, 3), True, 2, 1, 1, 1, 1),
    ((1, 4, 5, 5), (4, 2, 4, 4), False, 2, 1, 0, 1, 1),  # batch 1, the usual upsampler
    ((2, 6, 5, 7), (6, 2, 3, 5), True, (3, 2), (2, 1), (2, 0), 3, (1, 3)),
    ((2, 4, 6, 6), (4, 3, 3, 3), True, 1, 0, 1, 2, 2),  # output_padding >= stride
    ((2, 3, 6, 5), (3, 5, 1, 1), True, 1, 0, 0, 1, 1),  # 1x1
    ((1, 6, 4, 4), (6, 1, 3, 3), True, 2, 1, 1, 6, 1),  # depthwise
    ((2, 5, 3, 3), (5, 4, 7, 7), True, 1, 3, 0, 1, 1),  # 7x7
    ((3, 4, 9, 8), (4, 3, 3, 3), True, 1, 2, 0, 1, 2),  # dilation 2
    ((4, 5), (4, 3, 3, 3), True, 2, 1, 1, 1, 1),  # unbatched
    ((2, 32, 4, 5), (32, 8, 4, 4), True, 2, 1, 0, 1, 1),  # a DCGAN generator layer
    ((2, 24, 6, 6), (24, 20, 3, 3), False, 1, 1, 0, 1, 1),  # stride 1: Winograd both ways
]


@pytest.mark.parametrize("xs, ws, has_bias, stride, padding, out_pad, groups, dilation",
                         TRANSPOSE_CASES)
def test_conv_transpose2d_matches_torch(xs, ws, has_bias, stride, padding, out_pad, groups,
                                        dilation):
    if len(xs) == 2:
        xs = (ws[0], *xs)
    b = rand((ws[1] * groups,), 2) if has_bias else None
    parity(F.conv_transpose2d, torch_f().conv_transpose2d, [rand(xs), rand(ws, 1), b],
           kwargs=dict(stride=stride, padding=padding, output_padding=out_pad, groups=groups,
                       dilation=dilation))


def test_kernels_match_torch():
    """kiln.kernels on NumPy arrays, no autograd: each map against PyTorch's."""
    torch = torch_or_skip()
    x, w, b = rand((2, 6, 11, 9)), rand((8, 3, 3, 3), 1), rand((8,), 2)
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    y = kernels.conv2d_forward(x, w, b, **args)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, **args)
    g = rand(y.shape, 3)
    yt.backward(torch.tensor(g))
    assert rel_err(y, yt.detach().numpy()) < 1e-4
    gx = kernels.conv2d_backward_input(g, w, x.shape, **args)
    gw = kernels.conv2d_backward_weight(g, x, w.shape, **args)
    assert rel_err(gx, xt.grad.numpy()) < 1e-4
    assert rel_err(gw, wt.grad.numpy()) < 1e-4
    assert rel_err(kernels.conv2d_backward_bias(g), bt.grad.numpy()) < 1e-4
    # conv_transpose2d's forward is conv2d's input gradient.
    targs = dict(stride=(2, 1), padding=(1, 2), output_padding=(0, 0), groups=2,
                 dilation=(1, 2))
    yT = kernels.conv_transpose2d_forward(g, w, None, **targs)
    assert yT.shape == x.shape
    assert rel_err(yT, gx) < 1e-6


# ---- finite differences in float64 (no PyTorch) ----

GRADCHECK_CONV = [
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 4, 7, 7), (4, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
    ((2, 3, 5, 5), (3, 1, 3, 3), 2, 1, 1, 3),
    ((1, 2, 6, 6), (3, 2, 1, 1), 3, 0, 1, 1),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", GRADCHECK_CONV)
def test_conv2d_gradcheck(xs, ws, stride, padding, dilation, groups):
    x = kiln.tensor(rand(xs, 0, np.float64), requires_grad=True)
    w = kiln.tensor(rand(ws, 1, np.float64), requires_grad=True)
    b = kiln.tensor(rand((ws[0],), 2, np.float64), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
                     [x, w, b])


GRADCHECK_TRANSPOSE = [
    ((2, 3, 4, 4), (3, 2, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 3, 5), (4, 1, 2, 3), (1, 2), (0, 1), (0, 1), 2, (2, 1)),
]


@pytest.mark.parametrize("xs, ws, stride, padding, out_pad, groups, dilation",
                         GRADCHECK_TRANSPOSE)
def test_conv_transpose2d_gradcheck(xs, ws, stride, padding, out_pad, groups, dilation):
    x = kiln.tensor(rand(xs, 0, np.float64), requires_grad=True)
    w = kiln.tensor(rand(ws, 1, np.float64), requires_grad=True)
    b = kiln.tensor(rand((ws[1] * groups,), 2, np.float64), requires_grad=True)
    assert gradcheck(
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups, dilation),
        [x, w, b])


def test_conv2d_same_padding_gradcheck():
    x = kiln.tensor(rand((1, 2, 5, 6), 0, np.float64), requires_grad=True)
    w = kiln.tensor(rand((3, 2, 2, 3), 1, np.float64), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), [x, w])


def test_conv2d_naive_reference():
    """The forward against a direct loop, without PyTorch."""
    x, w = rand((2, 4, 7, 6), 0, np.float64), rand((6, 2, 3, 2), 1, np.float64)
    stride, pad, dil, groups = (2, 1), (1, 2), (1, 2), 2
    y = F.conv2d(kiln.tensor(x), kiln.tensor(w), None, stride, pad, dil, groups).numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ref = np.zeros_like(y)
    kg, cg = w.shape[0] // groups, w.shape[1]
    for k in range(w.shape[0]):
        c0 = (k // kg) * cg
        for p in range(y.shape[2]):
            for q in range(y.shape[3]):
                for r in range(w.shape[2]):
                    for s in range(w.shape[3]):
                        ih, iw = p * stride[0] + r * dil[0], q * stride[1] + s * dil[1]
                        ref[:, k, p, q] += xp[:, c0:c0 + cg, ih, iw] @ w[k, :, r, s]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


# ---- bad input: each error is a ValueError or TypeError naming the op ----

def t(shape: tuple[int, ...], dtype: type = np.float32) -> kiln.Tensor:
    return kiln.tensor(np.zeros(shape, dtype))


BAD_CONV2D = [
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8, 1)), t((4, 3, 3, 3))), "4-D"),
    (ValueError, lambda: F.conv2d(t((3, 8)), t((4, 3, 3, 3))), "4-D"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3))), "4-D weight"),
    (ValueError, lambda: F.conv2d(t((8, 3, 32, 32)), t((16, 4, 3, 3))), "expects 4"),
    (ValueError, lambda: F.conv2d(t((2, 6, 8, 8)), t((4, 2, 3, 3)), groups=4), "divisible"),
    (ValueError, lambda: F.conv2d(t((2, 4, 8, 8)), t((6, 1, 3, 3)), groups=4), "divisible"),
    (ValueError, lambda: F.conv2d(t((2, 3, 2, 2)), t((4, 3, 3, 3))), "larger than the padded"),
    (ValueError, lambda: F.conv2d(t((2, 3, 5, 5)), t((4, 3, 3, 3)), dilation=3), "larger"),
    (ValueError, lambda: F.conv2d(t((2, 3, 0, 5)), t((4, 3, 1, 1))), "larger"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), stride=0), "stride"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), stride=(1, -2)), "stride"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), dilation=0), "dilation"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), padding=-1), "padding"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), groups=0), "groups"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 0, 3))), "zero"),
    (ValueError, lambda: F.conv2d(t((2, 0, 8, 8)), t((4, 0, 3, 3))), "channels"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), t((5,))), "bias"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), t((4, 1))), "bias"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), padding="full"), "padding"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), stride=2, padding="same"),
     "same"),
    (TypeError, lambda: F.conv2d(np.zeros((2, 3, 8, 8), np.float32), t((4, 3, 3, 3))),
     "kiln.Tensor"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))), "kiln.Tensor"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8), np.int64), t((4, 3, 3, 3), np.int64)),
     "float32"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8), np.float16), t((4, 3, 3, 3), np.float16)),
     "float32"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3), np.float64)), "dtype"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), t((4,), np.float64)),
     "dtype"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), stride=1.5), "stride"),
    (ValueError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), padding=(1, 2, 3)),
     "padding"),
    (TypeError, lambda: F.conv2d(t((2, 3, 8, 8)), t((4, 3, 3, 3)), groups="2"), "groups"),
]


@pytest.mark.parametrize("error, call, words", BAD_CONV2D)
def test_conv2d_bad_input(error, call, words):
    with pytest.raises(error, match="conv2d") as info:
        call()
    assert words in str(info.value)


def test_conv2d_unbatched_channel_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"conv2d: .*\(1, 8, 3, 32\).*\(4, 3, 3, 3\)"):
        F.conv2d(t((8, 3, 32)), t((4, 3, 3, 3)))


BAD_TRANSPOSE = [
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((3, 2, 3, 3))), "expects 3"),
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((4, 2, 3, 3)), groups=3),
     "divisible"),
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((4, 2, 3, 3)), stride=2,
                                            output_padding=2), "output_padding"),
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((4, 2, 3, 3)),
                                            output_padding=1), "output_padding"),
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 1, 1)), t((4, 2, 1, 1)), padding=1),
     "negative"),
    (ValueError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((4, 2, 3, 3)), t((3,))),
     "bias"),
    (ValueError, lambda: F.conv_transpose2d(t((4, 5)), t((4, 2, 3, 3))), "4-D"),
    (TypeError, lambda: F.conv_transpose2d(t((2, 4, 5, 5)), t((4, 2, 3, 3)), padding="same"),
     "padding"),
    (TypeError, lambda: F.conv_transpose2d(t((2, 4, 5, 5), np.int32), t((4, 2, 3, 3))),
     "float32"),
]


@pytest.mark.parametrize("error, call, words", BAD_TRANSPOSE)
def test_conv_transpose2d_bad_input(error, call, words):
    with pytest.raises(error, match="conv_transpose2d") as info:
        call()
    assert words in str(info.value)


def z(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


BAD_KERNELS = [
    (ValueError, lambda: kernels.conv2d_backward_input(z((2, 4, 7, 7)), z((4, 3, 3, 3)),
                                                       (2, 3, 8, 8)), "grad_output"),
    (ValueError, lambda: kernels.conv2d_backward_input(z((2, 4, 6, 6)), z((4, 3, 3, 3)),
                                                       (2, 3, 8, 8), padding=1), "grad_output"),
    (TypeError, lambda: kernels.conv2d_backward_input(z((2, 4, 6, 6)), z((4, 3, 3, 3)),
                                                      "shape"), "input_shape"),
    (ValueError, lambda: kernels.conv2d_backward_input(z((2, 4, 6, 6)), z((4, 3, 3, 3)),
                                                       (2, 3, 8)), "input"),
    (ValueError, lambda: kernels.conv2d_backward_weight(z((2, 4, 6, 6)), z((2, 3, 8, 8)),
                                                        (4, 3, 3, 3), stride=2), "grad_output"),
    (ValueError, lambda: kernels.conv2d_backward_weight(z((2, 4, 6, 6)), z((2, 3, 8, 8)),
                                                        (4, 3, 3, -3)), "weight"),
    (TypeError, lambda: kernels.conv2d_backward_weight(z((2, 4, 6, 6), np.float64),
                                                       z((2, 3, 8, 8)), (4, 3, 3, 3)), "input"),
    (ValueError, lambda: kernels.conv2d_backward_bias(z((2, 4, 6))), "4-D"),
    (TypeError, lambda: kernels.conv2d_backward_bias(z((2, 4, 6, 6), np.int64)), "float32"),
    (TypeError, lambda: kernels.conv2d_forward(z((2, 3, 8, 8)), z((4, 3, 3, 3)),
                                               stride=[1, "a"]), "stride"),
    (ValueError, lambda: kernels.conv_transpose2d_backward_input(
        z((2, 2, 6, 6)), z((4, 2, 3, 3)), (2, 4, 5, 5)), "grad_output"),
    (ValueError, lambda: kernels.conv_transpose2d_backward_weight(
        z((2, 2, 7, 7)), z((2, 4, 5, 5)), (4, 2, 3, 3), output_padding=3), "output_padding"),
]


@pytest.mark.parametrize("error, call, words", BAD_KERNELS)
def test_kernels_bad_input(error, call, words):
    with pytest.raises(error, match="conv") as info:
        call()
    assert words in str(info.value)


def test_kernels_read_non_contiguous_views_as_their_copies():
    # The binding marshaller copies a view that is not C-contiguous for the call.
    x = rand((2, 3, 8, 8)).transpose(0, 1, 3, 2)
    w = rand((4, 3, 3, 3), 1)[:, :, ::-1]
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    np.testing.assert_array_equal(
        kernels.conv2d_forward(x, w),
        kernels.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w)))


def test_huge_arguments_do_not_overflow():
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(t((1, 1, 4, 4)), t((1, 1, 1, 1)), padding=2**40)
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(t((1, 1, 4, 4)), t((1, 1, 1, 1)), stride=2**62)


def test_empty_batch():
    y = F.conv2d(t((0, 3, 8, 8)), t((4, 3, 3, 3)), padding=1)
    assert y.shape == (0, 4, 8, 8)


def test_conv_transpose2d_empty_output_as_torch():
    """PyTorch returns an empty tensor when the output width works out to 0."""
    x = kiln.tensor(rand((3, 2, 8, 4)), requires_grad=True)
    w = kiln.tensor(rand((2, 16, 5, 1), 1), requires_grad=True)
    y = F.conv_transpose2d(x, w, None, (2, 1), (3, 2), (1, 0))
    assert y.shape == (3, 16, 14, 0)
    y.sum().backward()
    assert not x.grad.numpy().any() and not w.grad.numpy().any()
