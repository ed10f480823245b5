"""linear_forward / linear_backward against NumPy, float64 central differences and
torch.nn.functional.linear."""
import numpy as np
import pytest

from conftest import assert_close, check_grad, f32
from weitiao import _C


def linear_ref(x, w, b=None):
    y = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    return y if b is None else y + np.asarray(b, np.float64)


# (N, IN, OUT)
SHAPES = [(3, 5, 4), (1, 7, 1), (6, 10, 3), (2, 1, 5), (9, 33, 17)]


def make_inputs(rng, shape, bias=True):
    n, fan_in, fan_out = shape
    x = f32(rng.standard_normal((n, fan_in)))
    w = f32(rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in))
    b = f32(rng.standard_normal(fan_out)) if bias else None
    return x, w, b


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(rng, shape, bias):
    x, w, b = make_inputs(rng, shape, bias)
    y = _C.linear_forward(x, w, b)
    assert y.dtype == np.float32 and y.shape == (shape[0], shape[2])
    assert_close(y, linear_ref(x, w, b))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_by_central_differences(rng, shape, bias):
    x, w, b = make_inputs(rng, shape, bias)
    dy = f32(rng.standard_normal((shape[0], shape[2])))
    dw = np.zeros_like(w)
    db = np.zeros(shape[2], np.float32) if bias else None
    dx = _C.linear_backward(dy, x, w, dw, db)
    check_grad(dx, lambda x64: np.sum(linear_ref(x64, w, b) * dy), x)
    check_grad(dw, lambda w64: np.sum(linear_ref(x, w64, b) * dy), w)
    if bias:
        check_grad(db, lambda b64: np.sum(linear_ref(x, w, b64) * dy), np.zeros(shape[2]))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(rng, torch, shape, bias):
    x, w, b = make_inputs(rng, shape, bias)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.linear(xt, wt, bt)
    dy = f32(rng.standard_normal(tuple(yt.shape)))
    yt.backward(torch.tensor(dy))
    assert_close(_C.linear_forward(x, w, b), yt.detach().numpy())
    dw = np.zeros_like(w)
    db = np.zeros(shape[2], np.float32) if bias else None
    assert_close(_C.linear_backward(dy, x, w, dw, db), xt.grad.numpy())
    assert_close(dw, wt.grad.numpy())
    if bias:
        assert_close(db, bt.grad.numpy())


def test_backward_adds_into_gradients_and_can_skip_input_grad(rng):
    x, w, _ = make_inputs(rng, (4, 6, 3))
    dy = f32(rng.standard_normal((4, 3)))
    dw, db = np.zeros_like(w), np.zeros(3, np.float32)
    dx = _C.linear_backward(dy, x, w, dw, db)
    once_w, once_b = dw.copy(), db.copy()
    assert _C.linear_backward(dy, x, w, dw, db, need_input_grad=False) is None
    assert_close(dw, 2 * once_w)
    assert_close(db, 2 * once_b)
    # Only the input gradient, nothing to add into.
    np.testing.assert_array_equal(_C.linear_backward(dy, x, w), dx)
    np.testing.assert_array_equal(_C.linear_backward(dy, x, w, grad_weight=None), dx)


def test_zero_batch(rng):
    x = np.zeros((0, 5), np.float32)
    w = f32(rng.standard_normal((3, 5)))
    y = _C.linear_forward(x, w, np.ones(3, np.float32))
    assert y.shape == (0, 3)
    dw, db = f32(np.ones((3, 5))), f32(np.ones(3))
    dx = _C.linear_backward(y, x, w, dw, db)
    assert dx.shape == (0, 5)
    np.testing.assert_array_equal(dw, 1.0)
    np.testing.assert_array_equal(db, 1.0)


def test_zero_input_features_give_the_bias_as_torch(torch):
    x = np.zeros((2, 0), np.float32)
    w = np.zeros((3, 0), np.float32)
    b = np.array([1.0, -2.0, 3.0], np.float32)
    y = _C.linear_forward(x, w, b)
    np.testing.assert_array_equal(y, torch.nn.functional.linear(
        torch.tensor(x), torch.tensor(w), torch.tensor(b)).numpy())
