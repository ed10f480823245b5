"""batch_norm2d_forward_train / _eval / _backward against a NumPy reference, float64 central
differences and torch.nn.functional.batch_norm (PyTorch's running-statistics semantics)."""
import numpy as np
import pytest

from conftest import assert_close, check_grad, f32
from weitiao import _C


def per_channel(v):
    return np.asarray(v, np.float64)[None, :, None, None]


def bn_train_ref(x, weight=None, bias=None, eps=1e-5):
    """Batch statistics over N, H, W; the biased variance normalises. Returns y, mean, var."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    y = (x - per_channel(mean)) / np.sqrt(per_channel(var) + eps)
    if weight is not None:
        y = y * per_channel(weight)
    if bias is not None:
        y = y + per_channel(bias)
    return y, mean, var


def bn_eval_ref(x, weight, bias, running_mean, running_var, eps=1e-5):
    x = np.asarray(x, np.float64)
    y = (x - per_channel(running_mean)) / np.sqrt(per_channel(running_var) + eps)
    if weight is not None:
        y = y * per_channel(weight)
    if bias is not None:
        y = y + per_channel(bias)
    return y


SHAPES = [(2, 3, 4, 5), (1, 10, 3, 3), (4, 5, 1, 1), (1, 2, 1, 2), (3, 9, 2, 3)]


def make_inputs(rng, shape, affine=True):
    c = shape[1]
    # Per-channel offsets and scales, so a wrong axis or a forgotten mean shows.
    x = f32(rng.standard_normal(shape) * rng.uniform(0.5, 2.0, c)[None, :, None, None]
            + rng.uniform(-3, 3, c)[None, :, None, None])
    w = f32(rng.uniform(0.5, 1.5, c)) if affine else None
    b = f32(rng.standard_normal(c)) if affine else None
    return x, w, b


@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("shape", SHAPES)
def test_train_forward_matches_reference(rng, shape, momentum):
    x, w, b = make_inputs(rng, shape)
    eps = 1e-3
    rm0, rv0 = f32(rng.standard_normal(shape[1])), f32(rng.uniform(0.5, 2, shape[1]))
    rm, rv = rm0.copy(), rv0.copy()
    y, save_mean, save_invstd = _C.batch_norm2d_forward_train(x, w, b, rm, rv, momentum, eps)
    y_ref, mean, var = bn_train_ref(x, w, b, eps)
    assert y.dtype == save_mean.dtype == save_invstd.dtype == np.float32
    assert_close(y, y_ref)
    assert_close(save_mean, mean)
    assert_close(save_invstd, 1 / np.sqrt(var + eps))
    count = shape[0] * shape[2] * shape[3]
    assert_close(rm, (1 - momentum) * rm0 + momentum * mean)
    # The running variance takes the unbiased estimate, as PyTorch's does.
    assert_close(rv, (1 - momentum) * rv0 + momentum * var * count / (count - 1))


def test_train_forward_defaults_without_affine_or_running_stats(rng):
    x, _, _ = make_inputs(rng, (2, 3, 4, 4))
    y, mean, invstd = _C.batch_norm2d_forward_train(x)
    y_ref, mean_ref, var_ref = bn_train_ref(x)  # weight 1, bias 0, eps 1e-5
    assert_close(y, y_ref)
    assert_close(mean, mean_ref)
    assert_close(invstd, 1 / np.sqrt(var_ref + 1e-5))
    # Default momentum is 0.1.
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    _C.batch_norm2d_forward_train(x, running_mean=rm, running_var=rv)
    assert_close(rm, 0.1 * mean_ref)
    assert_close(rv, 0.9 + 0.1 * var_ref * 32 / 31)


def test_train_forward_momentum_zero_and_one(rng):
    x, w, b = make_inputs(rng, (2, 4, 3, 3))
    rm0, rv0 = f32(rng.standard_normal(4)), f32(rng.uniform(0.5, 2, 4))
    rm, rv = rm0.copy(), rv0.copy()
    _C.batch_norm2d_forward_train(x, w, b, rm, rv, momentum=0.0)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    _C.batch_norm2d_forward_train(x, w, b, rm, rv, momentum=1.0)
    _, mean, var = bn_train_ref(x)
    assert_close(rm, mean)
    assert_close(rv, var * 18 / 17)


def test_train_forward_only_one_running_stat(rng):
    x, w, b = make_inputs(rng, (2, 3, 2, 2))
    rm = np.zeros(3, np.float32)
    _C.batch_norm2d_forward_train(x, w, b, running_mean=rm, running_var=None, momentum=0.5)
    assert_close(rm, 0.5 * bn_train_ref(x)[1])


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 1, 1, 1)])
def test_train_refuses_one_value_per_channel(rng, shape):
    x = f32(rng.standard_normal(shape))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        _C.batch_norm2d_forward_train(x)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_forward_matches_reference(rng, shape, affine):
    x, w, b = make_inputs(rng, shape, affine)
    rm, rv = f32(rng.standard_normal(shape[1])), f32(rng.uniform(0.5, 2, shape[1]))
    rm0, rv0 = rm.copy(), rv.copy()
    y = _C.batch_norm2d_forward_eval(x, w, b, rm, rv, eps=1e-3)
    assert_close(y, bn_eval_ref(x, w, b, rm, rv, eps=1e-3))
    np.testing.assert_array_equal(rm, rm0)  # evaluation never touches the statistics
    np.testing.assert_array_equal(rv, rv0)
    assert_close(_C.batch_norm2d_forward_eval(x, w, b, rm, rv), bn_eval_ref(x, w, b, rm, rv))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_train_backward_by_central_differences(rng, shape, affine):
    x, w, b = make_inputs(rng, shape, affine)
    eps = 1e-5
    _, mean, invstd = _C.batch_norm2d_forward_train(x, w, b, eps=eps)
    dy = f32(rng.standard_normal(shape))
    dw, db = np.zeros(shape[1], np.float32), np.zeros(shape[1], np.float32)
    dx = _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw, db, training=True)
    check_grad(dx, lambda x64: np.sum(bn_train_ref(x64, w, b, eps)[0] * dy), x)
    w_at = w if affine else np.ones(shape[1])
    check_grad(dw, lambda w64: np.sum(bn_train_ref(x, w64, b, eps)[0] * dy), w_at)
    check_grad(db, lambda b64: np.sum(bn_train_ref(x, w, b64, eps)[0] * dy), np.zeros(shape[1]))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_backward_by_central_differences(rng, shape, affine):
    # training=False: mean and invstd are the running mean and 1/sqrt(running_var + eps), and
    # they are constants, so dx = dy * weight * invstd.
    x, w, b = make_inputs(rng, shape, affine)
    eps = 1e-3
    rm, rv = f32(rng.standard_normal(shape[1])), f32(rng.uniform(0.5, 2, shape[1]))
    invstd = f32(1 / np.sqrt(rv.astype(np.float64) + eps))
    dy = f32(rng.standard_normal(shape))
    dw, db = np.zeros(shape[1], np.float32), np.zeros(shape[1], np.float32)
    dx = _C.batch_norm2d_backward(dy, x, w, rm, invstd, dw, db, training=False)
    check_grad(dx, lambda x64: np.sum(bn_eval_ref(x64, w, b, rm, rv, eps) * dy), x)
    w_at = w if affine else np.ones(shape[1])
    check_grad(dw, lambda w64: np.sum(bn_eval_ref(x, w64, b, rm, rv, eps) * dy), w_at)
    check_grad(db, lambda b64: np.sum(bn_eval_ref(x, w, b64, rm, rv, eps) * dy),
               np.zeros(shape[1]))


@pytest.mark.parametrize("training", [True, False])
def test_backward_without_input_grad_and_accumulation(rng, training):
    x, w, b = make_inputs(rng, (2, 3, 4, 4))
    _, mean, invstd = _C.batch_norm2d_forward_train(x, w, b)
    dy = f32(rng.standard_normal(x.shape))
    dw1, db1 = np.zeros(3, np.float32), np.zeros(3, np.float32)
    dx = _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw1, db1, training=training)
    assert dx.shape == x.shape

    dw, db = np.zeros(3, np.float32), np.zeros(3, np.float32)
    out = _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw, db, training=training,
                                   need_input_grad=False)
    assert out is None
    np.testing.assert_array_equal(dw, dw1)
    np.testing.assert_array_equal(db, db1)
    # grad_weight and grad_bias are added into: a second call doubles them.
    _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw, db, training=training,
                             need_input_grad=False)
    assert_close(dw, 2 * dw1)
    assert_close(db, 2 * db1)
    # Omitting them still gives the same input gradient.
    dx_only = _C.batch_norm2d_backward(dy, x, w, mean, invstd, training=training)
    np.testing.assert_array_equal(dx_only, dx)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 10, 3, 3), (4, 5, 1, 1)])
def test_train_matches_torch(rng, torch, shape, affine):
    F = torch.nn.functional
    x, w, b = make_inputs(rng, shape, affine)
    momentum, eps = 0.2, 1e-5
    rm0, rv0 = f32(rng.standard_normal(shape[1])), f32(rng.uniform(0.5, 2, shape[1]))
    rm, rv = rm0.copy(), rv0.copy()
    y, mean, invstd = _C.batch_norm2d_forward_train(x, w, b, rm, rv, momentum, eps)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True) if affine else None
    bt = torch.tensor(b, requires_grad=True) if affine else None
    rmt, rvt = torch.tensor(rm0), torch.tensor(rv0)
    yt = F.batch_norm(xt, rmt, rvt, wt, bt, training=True, momentum=momentum, eps=eps)
    _, mean_t, invstd_t = torch.native_batch_norm(torch.tensor(x), None, None, None, None,
                                                  True, momentum, eps)
    assert_close(y, yt.detach().numpy())
    assert_close(mean, mean_t.numpy())
    assert_close(invstd, invstd_t.numpy())
    assert_close(rm, rmt.numpy())
    assert_close(rv, rvt.numpy())

    dy = f32(rng.standard_normal(shape))
    yt.backward(torch.tensor(dy))
    dw, db = np.zeros(shape[1], np.float32), np.zeros(shape[1], np.float32)
    dx = _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw, db, training=True)
    assert_close(dx, xt.grad.numpy())
    if affine:
        assert_close(dw, wt.grad.numpy())
        assert_close(db, bt.grad.numpy())


@pytest.mark.parametrize("affine", [True, False])
def test_eval_matches_torch(rng, torch, affine):
    F = torch.nn.functional
    shape, eps = (2, 5, 3, 4), 1e-3
    x, w, b = make_inputs(rng, shape, affine)
    rm, rv = f32(rng.standard_normal(shape[1])), f32(rng.uniform(0.5, 2, shape[1]))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True) if affine else None
    bt = torch.tensor(b, requires_grad=True) if affine else None
    yt = F.batch_norm(xt, torch.tensor(rm), torch.tensor(rv), wt, bt, training=False, eps=eps)
    dy = f32(rng.standard_normal(shape))
    yt.backward(torch.tensor(dy))

    assert_close(_C.batch_norm2d_forward_eval(x, w, b, rm, rv, eps), yt.detach().numpy())
    invstd = f32(1 / np.sqrt(rv.astype(np.float64) + eps))
    dw, db = np.zeros(shape[1], np.float32), np.zeros(shape[1], np.float32)
    dx = _C.batch_norm2d_backward(dy, x, w, rm, invstd, dw, db, training=False)
    assert_close(dx, xt.grad.numpy())
    if affine:
        assert_close(dw, wt.grad.numpy())
        assert_close(db, bt.grad.numpy())


def test_running_statistics_over_several_steps_match_torch(rng, torch):
    F = torch.nn.functional
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    rmt, rvt = torch.zeros(4), torch.ones(4)
    for _ in range(5):
        x, _, _ = make_inputs(rng, (3, 4, 2, 3))
        _C.batch_norm2d_forward_train(x, None, None, rm, rv, 0.1)
        F.batch_norm(torch.tensor(x), rmt, rvt, training=True, momentum=0.1)
    assert_close(rm, rmt.numpy())
    assert_close(rv, rvt.numpy())


def test_zero_batch_eval_and_backward(rng):
    x = np.zeros((0, 3, 4, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    assert _C.batch_norm2d_forward_eval(x, None, None, rm, rv).shape == x.shape
    dw = f32(np.ones(3))
    dx = _C.batch_norm2d_backward(x, x, None, rm, rv, dw, None)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, 1.0)
