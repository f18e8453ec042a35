"""dropout and dropout2d: mask statistics, exact scaling, seeding, thread-count
independence, gradients, in-place use and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import torch_or_skip

import kiln
import kiln.nn.functional as F
from kiln.autograd import gradcheck


def ones(*shape: int, requires_grad: bool = False) -> kiln.Tensor:
    return kiln.tensor(np.ones(shape, np.float32), requires_grad=requires_grad)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_mean_and_exact_scale(p):
    kiln.manual_seed(1)
    n = 200_000
    x = kiln.tensor(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    y = F.dropout(x, p).numpy()
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(y[kept], x.numpy()[kept] * np.float32(1 / (1 - p)))
    np.testing.assert_allclose(y[kept], x.numpy()[kept] / (1 - p), rtol=2e-7)


def test_same_seed_same_mask_and_fresh_masks_otherwise():
    x = ones(64, 33)
    kiln.manual_seed(7)
    a, b = F.dropout(x).numpy(), F.dropout(x).numpy()
    kiln.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_independent_of_thread_count():
    x = ones(256, 1024)
    before = kiln.get_num_threads()
    try:
        kiln.set_num_threads(1)
        kiln.manual_seed(3)
        one = F.dropout(x, 0.3).numpy()
        kiln.set_num_threads(2)
        kiln.manual_seed(3)
        two = F.dropout(x, 0.3).numpy()
    finally:
        kiln.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_edge_probabilities_and_eval():
    x = kiln.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(F.dropout(x, 0.0).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((3, 4), np.float32))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout2d(ones(2, 3, 4, 4), 0.5, training=False).shape == (2, 3, 4, 4)
    assert F.dropout(kiln.zeros(0, 3)).shape == (0, 3)


def test_backward_is_grad_times_mask_times_scale():
    x = ones(50, 40, requires_grad=True)
    y = F.dropout(x, 0.25)
    g = np.random.default_rng(2).standard_normal((50, 40)).astype(np.float32)
    y.backward(kiln.tensor(g))
    factor = y.detach().numpy()  # x is ones: y is mask / (1 - p)
    np.testing.assert_array_equal(x.grad.numpy(), g * factor)


@pytest.mark.parametrize("fn", [
    lambda x: F.dropout(x, 0.3),
    lambda x: F.dropout2d(x, 0.5),
    lambda x: F.dropout(x * 1, 0.3, inplace=True),
])
def test_gradcheck(fn):
    def seeded(x):
        kiln.manual_seed(11)  # the same mask on every finite-difference evaluation
        return fn(x)

    x = kiln.tensor(np.random.default_rng(4).standard_normal((3, 4, 2, 3)), requires_grad=True)
    assert gradcheck(seeded, [x])


def test_dropout2d_drops_whole_channels():
    kiln.manual_seed(5)
    y = F.dropout2d(ones(16, 32, 3, 5), 0.4).numpy()
    per_channel = y.reshape(16, 32, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # each channel all 0 or all 1/(1-p)
    kept = per_channel[:, :, 0] != 0
    assert abs(kept.mean() - 0.6) < 0.1
    np.testing.assert_array_equal(np.unique(y), np.array([0, 1 / 0.6], np.float32))


def test_dropout2d_warns_like_torch_for_other_ranks():
    with pytest.warns(UserWarning, match="3D input"):
        assert F.dropout2d(ones(2, 3, 4)).shape == (2, 3, 4)
    with pytest.warns(UserWarning, match="5-D input"):
        F.dropout2d(ones(2, 3, 2, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout2d(ones(2, 3, 4, 4))


def test_inplace():
    x = ones(8, 8)
    kiln.manual_seed(2)
    assert F.dropout(x, 0.5, inplace=True) is x
    assert set(np.unique(x.numpy())) <= {0.0, 2.0}

    leaf = ones(4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.dropout(leaf, 0.5, inplace=True)
    hidden = leaf * 3
    out = F.dropout(hidden, 0.5, inplace=True)
    assert out is hidden
    out.sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), out.detach().numpy())  # 3 * mask / (1 - p)


def test_matches_torch_semantics_on_scale():
    torch = torch_or_skip()
    # Masks come from different generators; the kept values and the zero set must agree in form.
    x = np.random.default_rng(6).standard_normal((1000,)).astype(np.float32)
    yt = torch.nn.functional.dropout(torch.tensor(x), 0.2).numpy()
    yk = F.dropout(kiln.tensor(x), 0.2).numpy()
    both = (yt != 0) & (yk != 0)
    np.testing.assert_allclose(yk[both], yt[both], rtol=1e-6)


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.dropout(ones(3), 1.5), ValueError,
     "dropout probability has to be between 0 and 1, but got 1.5"),
    (lambda: F.dropout(ones(3), -0.1), ValueError, "between 0 and 1"),
    (lambda: F.dropout2d(ones(2, 3, 4, 4), 2.0), ValueError, "between 0 and 1"),
    (lambda: F.dropout(ones(3), "0.5"), TypeError, "dropout: p must be a float"),
    (lambda: F.dropout(np.ones(3), 0.5), TypeError, "dropout: input must be a kiln.Tensor"),
    (lambda: F.dropout(kiln.tensor(np.ones(3, np.int64)), 0.5), TypeError, r"dropout: .*int64"),
    (lambda: F.dropout2d(kiln.tensor(np.ones(4, np.float32)), 0.5), ValueError,
     r"dropout2d: expected input of shape \(N, C, \*\)"),
])
def test_bad_input_raises(call, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            call()


def test_kernels_check_their_arguments():
    k = kiln.kernels
    x = np.ones((2, 3, 4), np.float32)
    y, mask = k.dropout_forward(x, 0.5, 1, 0)
    assert mask.dtype == np.uint8 and mask.shape == x.shape
    y2, mask2 = k.dropout2d_forward(x, 0.5, 1, 0)
    assert mask2.shape == (2, 3)
    np.testing.assert_array_equal(k.dropout_backward(x, mask2, 0.5), y2)
    with pytest.raises(ValueError, match="dropout_backward: mask"):
        k.dropout_backward(x, mask2.T.copy(), 0.5)
    with pytest.raises(TypeError, match="dropout_backward: expected mask of dtype uint8"):
        k.dropout_backward(x, mask.astype(bool), 0.5)
    with pytest.raises(ValueError, match="dropout: dropout probability"):
        k.dropout_forward(x, 1.01, 1, 0)
    with pytest.raises(ValueError, match="dropout2d: expected input"):
        k.dropout2d_forward(np.ones(3, np.float32), 0.5, 1, 0)


# ---------------------------------------------------------------- dropout1d, alpha_dropout
def test_dropout1d_drops_whole_channels_batched_and_unbatched():
    kiln.manual_seed(3)
    for shape in ((4, 6, 5), (6, 5)):
        y = F.dropout1d(ones(*shape), 0.5).numpy().reshape(-1, shape[-1])
        assert set(np.unique(y)) <= {0.0, 2.0}
        assert all(len(set(row)) == 1 for row in y)  # a channel is kept or dropped whole
    with pytest.raises(ValueError, match=r"dropout1d.*\(2, 3, 4, 5\)"):
        F.dropout1d(ones(2, 3, 4, 5))
    x = ones(2, 3)
    assert F.dropout1d(x, 0.5, training=False) is x


def test_alpha_dropout_keeps_mean_and_variance_and_its_gradient_is_the_scale():
    kiln.manual_seed(4)
    p, alpha = 0.2, 1.7580993408473766
    a = 1 / np.sqrt((alpha**2 * p + 1) * (1 - p))
    x = kiln.tensor(np.random.default_rng(0).standard_normal(200_000), requires_grad=True)
    y = F.alpha_dropout(x, p, training=True)
    values = y.detach().numpy()
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1) < 0.01
    y.sum().backward()
    g = x.grad.numpy()
    kept = g != 0
    assert abs(kept.mean() - (1 - p)) < 0.005
    np.testing.assert_allclose(g[kept], a, rtol=1e-12)
    # dropped elements sit at SELU's saturation, rescaled: a * (-alpha) + alpha * a * p
    np.testing.assert_allclose(values[~kept], -alpha * a + alpha * a * p, rtol=1e-12)
    np.testing.assert_allclose(values[kept], x.detach().numpy()[kept] * a + alpha * a * p,
                               rtol=1e-12)


def test_alpha_dropout_edges_match_torch():
    torch = torch_or_skip()
    x = ones(3)
    assert F.alpha_dropout(x, 0.5) is x  # PyTorch's default training=False
    assert F.alpha_dropout(x, 0.0, True) is x
    np.testing.assert_array_equal(F.alpha_dropout(x, 1.0, True).numpy(),
                                  torch.nn.functional.alpha_dropout(torch.ones(3), 1.0,
                                                                    True).numpy())
    with pytest.raises(ValueError, match=r"between 0 and 1.*1\.5"):
        F.alpha_dropout(x, 1.5, True)


def test_dropout_modules_train_and_eval():
    kiln.manual_seed(5)
    for cls, shape in ((kiln.nn.Dropout1d, (2, 3, 8)), (kiln.nn.Dropout2d, (2, 3, 4, 4)),
                       (kiln.nn.AlphaDropout, (4, 50))):
        m = cls(0.5)
        x = ones(*shape)
        assert not np.array_equal(m(x).numpy(), x.numpy())
        m.eval()
        assert m(x) is x
