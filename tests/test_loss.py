"""cross_entropy and soft_cross_entropy (mean softmax cross-entropy with label smoothing and
class weights, for integer labels or target probabilities; loss and logit gradient) against
NumPy, float64 central differences and torch.nn.functional.cross_entropy."""
import math

import numpy as np
import pytest

from conftest import assert_close, check_grad, f32
from weitiao import _C


def cross_entropy_ref(logits, labels, smoothing=0.0, weight=None, targets=None):
    """sum over rows of -sum_k w_k t_k log softmax(z)_k, t = (1 - s) onehot + s / K (or the
    smoothed ``targets``), divided by N, or by sum_i w[labels[i]] for weighted labels."""
    z = np.asarray(logits, np.float64)
    n, k = z.shape
    w = np.ones(k) if weight is None else np.asarray(weight, np.float64)
    zmax = z.max(axis=1, keepdims=True)
    log_p = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    if targets is not None:
        target = (1.0 - smoothing) * np.asarray(targets, np.float64) + smoothing / k
        return float(-(w * target * log_p).sum() / n)
    target = np.full((n, k), smoothing / k)
    target[np.arange(n), labels] += 1.0 - smoothing
    return float(-(w * target * log_p).sum() / w[labels].sum())


# (N, K)
SHAPES = [(4, 5), (1, 3), (7, 10), (3, 1), (16, 100)]
SMOOTHING = [0.0, 0.1, 1.0]


def make_inputs(rng, shape, scale=2.0):
    n, k = shape
    return f32(rng.standard_normal(shape) * scale), rng.integers(0, k, size=n)


@pytest.mark.parametrize("smoothing", SMOOTHING)
@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_grad_match_reference(rng, shape, smoothing):
    z, t = make_inputs(rng, shape)
    loss, grad = _C.cross_entropy(z, t, smoothing)
    assert isinstance(loss, float)
    assert grad.dtype == np.float32 and grad.shape == shape
    # Tighter than the float32 tolerances: the kernel computes the loss in double precision
    # from the same float32 logits the reference reads.
    assert math.isclose(loss, cross_entropy_ref(z, t, smoothing), rel_tol=1e-6, abs_tol=1e-6)
    check_grad(grad, lambda z64: cross_entropy_ref(z64, t, smoothing), z)


@pytest.mark.parametrize("smoothing", SMOOTHING)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(rng, torch, shape, smoothing):
    z, t = make_inputs(rng, shape)
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(t), label_smoothing=smoothing)
    lt.backward()
    loss, grad = _C.cross_entropy(z, t, label_smoothing=smoothing)
    assert_close(loss, lt.item())
    assert_close(grad, zt.grad.numpy())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_huge_logits_are_stable(rng, torch, smoothing):
    z, t = make_inputs(rng, (6, 7), scale=1e4)
    z[0] = 1e4
    z[1] = -1e4
    z[2, :] = 0.0
    z[2, t[2]] = 1e4  # a confident, correct row: loss 0 without smoothing
    loss, grad = _C.cross_entropy(z, t, smoothing)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # The default tolerances: the loss is ~1e4 here and the reference is float64.
    assert_close(loss, cross_entropy_ref(z, t, smoothing))
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(zt, torch.tensor(t), label_smoothing=smoothing)
    lt.backward()
    assert_close(loss, lt.item())
    assert_close(grad, zt.grad.numpy())


def test_need_grad_false_and_integer_label_dtypes(rng):
    z, t = make_inputs(rng, (5, 4))
    loss, grad = _C.cross_entropy(z, t)
    loss2, none = _C.cross_entropy(z, t, need_grad=False)
    assert none is None and loss2 == loss
    for dtype in (np.int32, np.uint8, np.int16):
        loss3, grad3 = _C.cross_entropy(z, t.astype(dtype))
        assert loss3 == loss
        np.testing.assert_array_equal(grad3, grad)
    loss4, _ = _C.cross_entropy(z, list(map(int, t)))
    assert loss4 == loss


def test_gradient_rows_sum_to_zero(rng):
    # Softmax and the smoothed target both sum to one per row.
    z, t = make_inputs(rng, (8, 6))
    _, grad = _C.cross_entropy(z, t, 0.1)
    assert_close(grad.sum(axis=1), np.zeros(8))


def test_empty_batch_gives_nan_as_torch(torch):
    z = np.zeros((0, 3), np.float32)
    loss, grad = _C.cross_entropy(z, np.zeros(0, np.int64))
    assert math.isnan(loss)
    assert grad.shape == (0, 3)
    assert math.isnan(torch.nn.functional.cross_entropy(
        torch.tensor(z), torch.zeros(0, dtype=torch.long)).item())


def make_targets(rng, shape):
    """Probability rows, some one-hot and some with a zero entry."""
    t = rng.dirichlet(np.ones(shape[1]), size=shape[0])
    t[0] = 0.0
    t[0, -1] = 1.0
    return f32(t)


def class_weight(rng, k):
    return f32(rng.uniform(0.2, 3.0, size=k))


@pytest.mark.parametrize("smoothing", SMOOTHING)
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_and_soft_losses_match_reference(rng, shape, smoothing):
    z, t = make_inputs(rng, shape)
    w = class_weight(rng, shape[1])
    loss, grad = _C.cross_entropy(z, t, smoothing, weight=w)
    assert math.isclose(loss, cross_entropy_ref(z, t, smoothing, w), rel_tol=1e-6, abs_tol=1e-6)
    check_grad(grad, lambda z64: cross_entropy_ref(z64, t, smoothing, w), z)
    probs = make_targets(rng, shape)
    for weight in (None, w):
        loss, grad = _C.soft_cross_entropy(z, probs, smoothing, weight=weight)
        ref = cross_entropy_ref(z, None, smoothing, weight, targets=probs)
        assert math.isclose(loss, ref, rel_tol=1e-6, abs_tol=1e-6)
        check_grad(grad, lambda z64: cross_entropy_ref(z64, None, smoothing, weight,
                                                       targets=probs), z)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_and_soft_losses_match_torch(rng, torch, shape, smoothing):
    z, t = make_inputs(rng, shape)
    w = class_weight(rng, shape[1])
    probs = make_targets(rng, shape)
    for fn, target, weight in ((_C.cross_entropy, t, w), (_C.soft_cross_entropy, probs, None),
                               (_C.soft_cross_entropy, probs, w)):
        zt = torch.tensor(z, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(
            zt, torch.tensor(target), label_smoothing=smoothing,
            weight=None if weight is None else torch.tensor(weight))
        lt.backward()
        loss, grad = fn(z, target, label_smoothing=smoothing, weight=weight)
        assert_close(loss, lt.item())
        assert_close(grad, zt.grad.numpy())


def test_one_hot_targets_equal_labels(rng):
    z, t = make_inputs(rng, (6, 4))
    one_hot = f32(np.eye(4)[t])
    for smoothing in (0.0, 0.2):
        hard, g_hard = _C.cross_entropy(z, t, smoothing)
        soft, g_soft = _C.soft_cross_entropy(z, one_hot, smoothing)
        assert math.isclose(hard, soft, rel_tol=1e-12)
        np.testing.assert_array_equal(g_hard, g_soft)


def test_unit_weights_change_nothing(rng):
    z, t = make_inputs(rng, (6, 4))
    assert _C.cross_entropy(z, t, 0.1)[0] == _C.cross_entropy(z, t, 0.1,
                                                              weight=f32(np.ones(4)))[0]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_soft_targets_outside_unit_interval_are_refused(rng, bad):
    z, _ = make_inputs(rng, (3, 4))
    targets = make_targets(rng, (3, 4))
    targets[1, 2] = bad
    with pytest.raises(ValueError, match=r"^soft_cross_entropy: targets: expected "
                                         r"probabilities in \[0, 1\]"):
        _C.soft_cross_entropy(z, targets)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_class_weights_are_refused(rng, bad):
    z, t = make_inputs(rng, (3, 4))
    w = f32(np.ones(4))
    w[2] = bad
    with pytest.raises(ValueError, match=r"^cross_entropy: labels: .*finite weights >= 0"):
        _C.cross_entropy(z, t, weight=w)
    with pytest.raises(ValueError, match=r"weight: expected shape \(4,\), got \(3,\)"):
        _C.cross_entropy(z, t, weight=f32(np.ones(3)))
