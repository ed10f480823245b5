"""dropout_forward / dropout_backward: inverted dropout with a seeded, counter-based mask."""
import numpy as np
import pytest

from conftest import assert_close, f32
from weitiao import _C


@pytest.fixture
def x(rng):
    # Never exactly zero, so y == 0 identifies the dropped elements.
    return f32(rng.uniform(0.5, 1.5, size=(4, 8, 25, 25)) * rng.choice([-1, 1], (4, 8, 25, 25)))


def test_mask_is_deterministic_for_a_seed(x):
    y1, m1 = _C.dropout_forward(x, 0.3, 1234)
    y2, m2 = _C.dropout_forward(x, p=0.3, seed=1234)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)
    assert m1.dtype == np.uint8 and m1.shape == x.shape and y1.shape == x.shape
    assert set(np.unique(m1)) == {0, 1}


def test_different_seeds_give_different_masks(x):
    masks = [_C.dropout_forward(x, 0.5, seed)[1] for seed in (0, 1, 2, 2**64 - 1)]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            # Independent masks with p = 0.5 disagree on about half of the elements.
            disagree = np.mean(masks[i] != masks[j])
            assert 0.45 < disagree < 0.55, (i, j, disagree)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_fraction_and_scaling(x, p):
    y, mask = _C.dropout_forward(x, p, 7)
    # 20000 Bernoulli draws: the standard deviation of the kept fraction is below 0.0036,
    # so 0.02 is more than 5 of them.
    assert abs(mask.mean() - (1 - p)) < 0.02
    # ...and every sample keeps about 1 - p too (5000 draws each: 0.04 is over 5 std).
    assert np.all(np.abs(mask.reshape(4, -1).mean(axis=1) - (1 - p)) < 0.04)
    kept = mask.astype(bool)
    np.testing.assert_array_equal(y[~kept], 0.0)
    assert_close(y[kept], x[kept] / np.float32(1 - p))
    np.testing.assert_array_equal(kept, y != 0)


def test_p_zero_is_identity_and_p_one_drops_everything(x):
    y, mask = _C.dropout_forward(x, 0.0, 3)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(mask, 1)
    np.testing.assert_array_equal(_C.dropout_backward(x, mask, 0.0), x)

    y, mask = _C.dropout_forward(x, 1.0, 3)
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(mask, 0)
    dx = _C.dropout_backward(x, mask, 1.0)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx, 0.0)


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_backward_uses_the_mask(rng, x, p):
    _, mask = _C.dropout_forward(x, p, 99)
    dy = f32(rng.standard_normal(x.shape))
    dx = _C.dropout_backward(dy, mask, p)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert_close(dx, dy * mask / np.float32(1 - p))
    # With a different mask the gradient follows that mask, not a fresh draw.
    other = np.ascontiguousarray(mask[::-1])
    assert_close(_C.dropout_backward(dy, other, p), dy * other / np.float32(1 - p))


def test_forward_is_linear_in_x_for_a_fixed_seed(rng):
    # y = x * mask / (1 - p): the derivative dy/dx is the backward's mask / (1 - p).
    x = f32(rng.standard_normal(1000))
    y1, m = _C.dropout_forward(x, 0.4, 5)
    y2, _ = _C.dropout_forward(2 * x, 0.4, 5)
    assert_close(y2, 2 * y1)
    assert_close(_C.dropout_backward(np.ones_like(x), m, 0.4), (y1 / x).astype(np.float32))


def test_any_shape_including_empty(rng):
    for shape in [(0,), (5,), (3, 0, 2), (2, 3, 4, 5, 1)]:
        x = f32(rng.standard_normal(shape))
        y, mask = _C.dropout_forward(x, 0.5, 1)
        assert y.shape == mask.shape == shape
        assert _C.dropout_backward(y, mask, 0.5).shape == shape


def test_mask_depends_on_position_only_through_the_flat_index(rng):
    # Counter-based: element i of a call depends on (seed, i) alone, not on the shape.
    x = f32(rng.standard_normal((6, 10)))
    _, m2 = _C.dropout_forward(x, 0.5, 11)
    _, m1 = _C.dropout_forward(x.reshape(-1), 0.5, 11)
    np.testing.assert_array_equal(m2.reshape(-1), m1)
