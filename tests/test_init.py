"""kiln.nn.init: formulas, statistics of the draws, seeding, and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.nn import init

# (out, in, kH, kW): fan_in = 64*9 = 576, fan_out = 128*9 = 1152; 73,728 draws put the
# sample std within ~0.3% of the true std (1 sigma), so 3% tolerances never flake.
WEIGHT_SHAPE = (128, 64, 3, 3)
FAN_IN, FAN_OUT = 64 * 9, 128 * 9


def weight(shape=WEIGHT_SHAPE, dtype=kiln.float32) -> nn.Parameter:
    return nn.Parameter(kiln.zeros(*shape, dtype=dtype))


def values(t: kiln.Tensor) -> np.ndarray:
    return t.detach().numpy()


@pytest.mark.parametrize(
    "nonlinearity, param, expected",
    [
        ("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose2d", None, 1.0),
        ("sigmoid", None, 1.0), ("tanh", None, 5.0 / 3), ("relu", None, math.sqrt(2.0)),
        ("leaky_relu", None, math.sqrt(2.0 / (1 + 0.01**2))),
        ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("leaky_relu", 1, 1.0),
        ("leaky_relu", math.sqrt(5), math.sqrt(2.0 / 6)), ("selu", None, 0.75),
    ],
)
def test_calculate_gain_formulas(nonlinearity, param, expected):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-12)


def test_calculate_gain_equals_torch():
    torch = pytest.importorskip("torch")
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]:
        assert init.calculate_gain(name) == torch.nn.init.calculate_gain(name)
    for slope in [0, 0.1, 3, 2.5]:
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15)


def test_fans_equal_torch():
    torch = pytest.importorskip("torch")
    for shape in [(5, 3), (16, 3, 7, 7), (8, 2, 1, 1), (4, 6, 3), (3, 5, 2, 2, 2)]:
        assert init._calculate_fan_in_and_fan_out(kiln.zeros(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))


def test_slides_xavier_case_std_one_over_sqrt_fan_in():
    w = init.kaiming_normal_(weight(), nonlinearity="linear")
    assert values(w).std() == pytest.approx(1 / math.sqrt(FAN_IN), rel=0.03)
    assert abs(values(w).mean()) < 0.05 / math.sqrt(FAN_IN) * 10


def test_slides_kaiming_case_std_sqrt_two_over_fan_in():
    w = init.kaiming_normal_(weight(), nonlinearity="relu")
    assert values(w).std() == pytest.approx(math.sqrt(2 / FAN_IN), rel=0.03)


def test_kaiming_normal_fan_out_and_leaky_slope():
    w = init.kaiming_normal_(weight(), a=0.2, mode="fan_out", nonlinearity="leaky_relu")
    expected = math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(FAN_OUT)
    assert values(w).std() == pytest.approx(expected, rel=0.03)


def test_kaiming_uniform_bound_and_std():
    w = init.kaiming_uniform_(weight(), nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / FAN_IN)
    assert np.abs(values(w)).max() <= bound
    assert np.abs(values(w)).max() > 0.99 * bound
    assert values(w).std() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_xavier_uniform_and_normal():
    std = 1.5 * math.sqrt(2 / (FAN_IN + FAN_OUT))
    w = init.xavier_uniform_(weight(), gain=1.5)
    assert np.abs(values(w)).max() <= math.sqrt(3) * std
    assert values(w).std() == pytest.approx(std, rel=0.03)
    w = init.xavier_normal_(weight(), gain=1.5)
    assert values(w).std() == pytest.approx(std, rel=0.03)


def test_uniform_normal_constant():
    w = init.uniform_(weight(), -0.5, 2.0)
    assert values(w).min() >= -0.5 and values(w).max() < 2.0
    assert values(w).mean() == pytest.approx(0.75, abs=0.02)
    w = init.normal_(weight(dtype=kiln.float64), mean=3.0, std=0.5)
    assert w.dtype == kiln.float64
    assert values(w).mean() == pytest.approx(3.0, abs=0.01)
    assert values(w).std() == pytest.approx(0.5, rel=0.03)
    assert (values(init.constant_(weight(), 0.3)) == np.float32(0.3)).all()
    assert (values(init.ones_(weight())) == 1).all()
    assert (values(init.zeros_(init.ones_(weight()))) == 0).all()
    counter = kiln.tensor(np.array(5, dtype=np.int64))
    assert init.zeros_(counter).item() == 0


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04),
                                             (0.0, 1.0, 0.5, 0.6), (1.0, 0.5, 1.2, 3.0)])
def test_trunc_normal_stays_in_window_with_the_truncated_moments(mean, std, a, b):
    w = init.trunc_normal_(weight(), mean=mean, std=std, a=a, b=b)
    v = values(w).astype(np.float64)
    assert v.min() >= np.float32(a) and v.max() <= np.float32(b)
    # Moments of the truncated normal.
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    mu = mean + (pdf(alpha) - pdf(beta)) / z * std
    var = std**2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z
                    - ((pdf(alpha) - pdf(beta)) / z) ** 2)
    assert v.mean() == pytest.approx(mu, abs=0.02 * math.sqrt(var) + 1e-7)
    assert v.std() == pytest.approx(math.sqrt(var), rel=0.03)


def test_init_is_in_place_recorded_nowhere_and_returns_the_tensor():
    w = weight((6, 4))
    storage = values(w)
    for fn in (init.kaiming_uniform_, init.kaiming_normal_, init.xavier_uniform_,
               init.xavier_normal_, init.uniform_, init.normal_, init.trunc_normal_,
               init.zeros_, init.ones_):
        assert fn(w) is w
        assert values(w) is storage or np.shares_memory(values(w), storage)
        assert w.is_leaf and w.grad is None and w.requires_grad


def test_init_follows_manual_seed_and_accepts_a_generator():
    kiln.manual_seed(123)
    first = values(init.kaiming_uniform_(weight((8, 5)))).copy()
    kiln.manual_seed(123)
    assert np.array_equal(values(init.kaiming_uniform_(weight((8, 5)))), first)
    a = values(init.normal_(weight((4, 4)), generator=np.random.default_rng(7))).copy()
    b = values(init.normal_(weight((4, 4)), generator=np.random.default_rng(7)))
    assert np.array_equal(a, b)


def test_default_layer_init_matches_pytorch_ranges():
    lin = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)
    for p in (lin.weight, lin.bias):
        assert np.abs(values(p)).max() <= bound
        assert np.abs(values(p)).max() > 0.9 * bound
    conv = nn.Conv2d(6, 32, 5)
    bound = 1 / math.sqrt(6 * 25)
    assert np.abs(values(conv.weight)).max() <= bound
    assert values(conv.weight).std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert np.abs(values(conv.bias)).max() <= bound
    # ConvTranspose2d's fan_in comes from weight dim 1 (out_channels / groups), as in PyTorch.
    tconv = nn.ConvTranspose2d(40, 6, 3)
    assert np.abs(values(tconv.bias)).max() <= 1 / math.sqrt(6 * 9)
    bn = nn.BatchNorm2d(7)
    assert (values(bn.weight) == 1).all() and (values(bn.bias) == 0).all()
    assert (values(nn.PReLU(3, init=0.1).weight) == np.float32(0.1)).all()


def test_zero_element_tensor_warns_and_is_a_no_op():
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(kiln.zeros(0, 3))


def test_trunc_normal_warns_when_mean_is_far_outside():
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(weight((10, 10)), mean=5.0, std=1.0, a=-1.0, b=1.0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: init.calculate_gain("swish"), ValueError, "unsupported nonlinearity"),
        (lambda: init.calculate_gain("leaky_relu", "x"), ValueError, "not a valid number"),
        (lambda: init.calculate_gain("leaky_relu", True), ValueError, "not a valid number"),
        (lambda: init.kaiming_uniform_(np.zeros((3, 3))), TypeError, "kaiming_uniform_"),
        (lambda: init.uniform_([1.0, 2.0]), TypeError, "uniform_"),
        (lambda: init.kaiming_normal_(kiln.zeros(5)), ValueError, "fewer than 2 dimensions"),
        (lambda: init.xavier_uniform_(kiln.zeros(5)), ValueError, r"shape \(5,\)"),
        (lambda: init.kaiming_normal_(kiln.zeros(3, 3), mode="fan_avg"), ValueError,
         "fan_in, fan_out"),
        (lambda: init.kaiming_normal_(kiln.zeros(3, 3), nonlinearity="swish"), ValueError,
         "unsupported nonlinearity"),
        (lambda: init.uniform_(kiln.zeros(3), 1.0, 0.0), ValueError, "from=1.0 > to=0.0"),
        (lambda: init.normal_(kiln.zeros(3), std=-1.0), ValueError, "std >= 0.0"),
        (lambda: init.normal_(kiln.zeros(3), mean="a"), TypeError, "mean must be a real"),
        (lambda: init.normal_(kiln.zeros(3), std=float("nan")), ValueError, "finite"),
        (lambda: init.trunc_normal_(kiln.zeros(3), a=1.0, b=0.0), ValueError, "a < b"),
        (lambda: init.trunc_normal_(kiln.zeros(3), std=0.0), ValueError, "std > 0.0"),
        (lambda: init.normal_(kiln.zeros(3, dtype=kiln.int64)), TypeError,
         "floating point"),
        (lambda: init.constant_(kiln.zeros(3), "x"), TypeError, "constant_"),
        (lambda: init.normal_(kiln.zeros(3), generator=np.random.RandomState(0)), TypeError,
         "numpy.random.Generator"),
    ],
)
def test_bad_input_raises_naming_the_function(call, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            call()
