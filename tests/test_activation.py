"""relu, relu6 and add against NumPy, float64 central differences and PyTorch."""
import numpy as np
import pytest

from conftest import assert_close, check_grad, f32, spaced_values
from weitiao import _C

# (forward, backward, cap): relu is clamp to [0, inf), relu6 to [0, 6].
ACTIVATIONS = {
    "relu": (_C.relu_forward, _C.relu_backward, np.inf),
    "relu6": (_C.relu6_forward, _C.relu6_backward, 6.0),
}
SHAPES = [(7,), (3, 5), (2, 3, 4, 5), (1, 1, 1, 1)]


def clamp_ref(x, cap):
    return np.minimum(np.maximum(np.asarray(x, np.float64), 0.0), cap)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_matches_reference(rng, name, shape):
    forward, _, cap = ACTIVATIONS[name]
    x = f32(rng.standard_normal(shape) * 5)  # reaches well past 6
    x.flat[0] = 0.0
    y = forward(x)
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_array_equal(y, clamp_ref(x, cap))  # a clamp is exact
    assert not np.shares_memory(y, x)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_propagates_nan_and_infinities(name):
    forward, _, cap = ACTIVATIONS[name]
    y = forward(np.array([np.nan, -np.inf, np.inf, -0.0], np.float32))
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], [0.0, cap, 0.0])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_by_central_differences(rng, name, shape):
    forward, backward, cap = ACTIVATIONS[name]
    # Values at least 0.005 from the kinks at 0 and 6, spread over [-6.6, 6.6] so relu6's
    # flat top is hit too.
    x = spaced_values(rng, shape, gap=0.11)
    y = forward(x)
    dy = f32(rng.standard_normal(shape))
    dx = backward(dy, y)
    assert dx.shape == shape and dx.dtype == np.float32
    check_grad(dx, lambda x64: np.sum(clamp_ref(x64, cap) * dy), x)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_is_zero_at_the_kinks_like_torch(name, torch):
    # PyTorch passes the gradient where 0 < x < cap: not at x == 0 nor x == 6.
    forward, backward, _ = ACTIVATIONS[name]
    x = np.array([-1.0, 0.0, 0.5, 5.5, 6.0, 7.0], np.float32)
    dy = np.arange(1, 7, dtype=np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = (torch.nn.functional.relu if name == "relu" else torch.nn.functional.relu6)(xt)
    yt.backward(torch.tensor(dy))
    y = forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(backward(dy, y), xt.grad.numpy())


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_matches_torch(rng, torch, name):
    F = torch.nn.functional
    forward, backward, _ = ACTIVATIONS[name]
    x = f32(rng.standard_normal((2, 3, 5, 4)) * 5)
    xt = torch.tensor(x, requires_grad=True)
    yt = (F.relu if name == "relu" else F.relu6)(xt)
    dy = f32(rng.standard_normal(x.shape))
    yt.backward(torch.tensor(dy))
    y = forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(backward(dy, y), xt.grad.numpy())


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_empty_input(name):
    forward, backward, _ = ACTIVATIONS[name]
    x = np.zeros((0, 3, 4, 4), np.float32)
    assert forward(x).shape == x.shape
    assert backward(x, x).shape == x.shape


@pytest.mark.parametrize("shape", SHAPES + [(0, 3)])
def test_add_matches_numpy_and_torch(rng, torch, shape):
    a = f32(rng.standard_normal(shape))
    b = f32(rng.standard_normal(shape))
    y = _C.add(a, b)
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_array_equal(y, a + b)  # one float32 rounding, same as NumPy's
    np.testing.assert_array_equal(y, torch.add(torch.tensor(a), torch.tensor(b)).numpy())
    assert not np.shares_memory(y, a) and not np.shares_memory(y, b)


def test_add_same_array_twice(rng):
    a = f32(rng.standard_normal((3, 4)))
    assert_close(_C.add(a, a), 2 * a)
