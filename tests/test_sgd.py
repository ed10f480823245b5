"""sgd_step: torch.optim.SGD's update of one tensor, in place, checked over ten steps against
a NumPy reference and against torch.optim.SGD itself."""
import numpy as np
import pytest

from conftest import assert_close, f32
from weitiao import _C

STEPS = 10

# (id, lr, momentum, dampening, weight_decay, nesterov)
COMBOS = [
    ("plain", 0.1, 0.0, 0.0, 0.0, False),
    ("momentum", 0.05, 0.9, 0.0, 0.0, False),
    ("momentum_dampening", 0.05, 0.9, 0.5, 0.0, False),
    ("nesterov", 0.05, 0.9, 0.0, 0.0, True),
    ("weight_decay", 0.1, 0.0, 0.0, 0.01, False),
    ("momentum_weight_decay", 0.05, 0.8, 0.0, 0.05, False),
    ("momentum_dampening_weight_decay", 0.05, 0.9, 0.3, 0.01, False),
    ("nesterov_weight_decay", 0.02, 0.95, 0.0, 1e-3, True),
]
IDS = [c[0] for c in COMBOS]


def sgd_ref(param, grads, lr, momentum, dampening, weight_decay, nesterov):
    """The update in torch.optim.SGD's documentation, in float64. Returns every iterate."""
    p = np.asarray(param, np.float64).copy()
    buf = None
    out = []
    for g in grads:
        d = np.asarray(g, np.float64) + weight_decay * p
        if momentum != 0:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p.copy())
    return out


def run(param, grads, lr, momentum, dampening, weight_decay, nesterov):
    """Drives _C.sgd_step like an optimizer would; returns every iterate."""
    param = param.copy()
    buf = np.zeros_like(param) if momentum != 0 else None
    out = []
    for step, g in enumerate(grads):
        _C.sgd_step(param, g, buf, lr=lr, momentum=momentum, dampening=dampening,
                    weight_decay=weight_decay, nesterov=nesterov, first_step=step == 0)
        out.append(param.copy())
    return out


def make_problem(rng, shape=(5, 7)):
    return f32(rng.standard_normal(shape)), [f32(rng.standard_normal(shape)) for _ in range(STEPS)]


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_ten_steps_match_reference(rng, combo):
    _, *hyper = combo
    param, grads = make_problem(rng)
    for ours, ref in zip(run(param, grads, *hyper), sgd_ref(param, grads, *hyper)):
        assert ours.dtype == np.float32
        assert_close(ours, ref)


@pytest.mark.parametrize("shape", [(5, 7), (3,), (2, 3, 3, 3)])
@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_ten_steps_match_torch(rng, torch, combo, shape):
    _, lr, momentum, dampening, weight_decay, nesterov = combo
    param, grads = make_problem(rng, shape)
    pt = torch.nn.Parameter(torch.tensor(param))
    opt = torch.optim.SGD([pt], lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay, nesterov=nesterov)
    ours = run(param, grads, lr, momentum, dampening, weight_decay, nesterov)
    for step, g in enumerate(grads):
        pt.grad = torch.tensor(g)
        opt.step()
        assert_close(ours[step], pt.detach().numpy())


def test_first_step_copies_the_gradient_into_the_buffer(rng):
    # torch: buf = d on the first step, whatever the dampening; momentum * buf + (1 - damp) * d
    # after. A stale buffer must be ignored when first_step is set.
    param, grads = make_problem(rng, (4,))
    buf = f32(np.full(4, 100.0))
    p = param.copy()
    _C.sgd_step(p, grads[0], buf, lr=0.1, momentum=0.9, dampening=0.5, first_step=True)
    assert_close(buf, grads[0])
    assert_close(p, param - 0.1 * grads[0])
    _C.sgd_step(p, grads[1], buf, lr=0.1, momentum=0.9, dampening=0.5)
    assert_close(buf, 0.9 * grads[0] + 0.5 * grads[1])
    assert_close(p, param - 0.1 * grads[0] - 0.1 * (0.9 * grads[0] + 0.5 * grads[1]))


def test_without_momentum_the_buffer_may_be_none_and_is_not_touched(rng):
    param, grads = make_problem(rng, (6,))
    p = param.copy()
    assert _C.sgd_step(p, grads[0], None, lr=0.5) is None
    assert_close(p, param - 0.5 * grads[0])
    buf = f32(np.arange(6))
    p = param.copy()
    _C.sgd_step(p, grads[0], buf, lr=0.5, first_step=True)
    assert_close(p, param - 0.5 * grads[0])
    np.testing.assert_array_equal(buf, np.arange(6))


def test_lr_zero_leaves_param_but_updates_buffer(rng):
    param, grads = make_problem(rng, (6,))
    p, buf = param.copy(), np.zeros(6, np.float32)
    _C.sgd_step(p, grads[0], buf, lr=0.0, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(p, param)
    assert_close(buf, grads[0])


def test_nesterov_requires_momentum():
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum > 0"):
        _C.sgd_step(p, p.copy(), None, lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov momentum requires .* zero dampening"):
        _C.sgd_step(p, p.copy(), np.zeros(3, np.float32), lr=0.1, momentum=0.9, dampening=0.1,
                    nesterov=True)
    np.testing.assert_array_equal(p, 1.0)


def test_momentum_requires_a_buffer():
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="momentum_buffer: expected an array shaped like param"):
        _C.sgd_step(p, p.copy(), None, lr=0.1, momentum=0.9)
    np.testing.assert_array_equal(p, 1.0)


@pytest.mark.parametrize("bad", [dict(lr=-0.1), dict(lr=float("nan")), dict(lr=0.1, momentum=-1),
                                 dict(lr=0.1, weight_decay=-1e-4),
                                 dict(lr=0.1, dampening=float("inf")), dict(lr=float("inf"))])
def test_bad_hyperparameters(bad):
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="sgd_step: expected finite lr"):
        _C.sgd_step(p, p.copy(), np.zeros(3, np.float32), **bad)
    np.testing.assert_array_equal(p, 1.0)


def test_lr_is_keyword_only_and_required():
    p = np.ones(3, np.float32)
    with pytest.raises(TypeError):
        _C.sgd_step(p, p.copy(), None, 0.1)
    with pytest.raises((TypeError, ValueError), match="lr"):
        _C.sgd_step(p, p.copy(), None)
    np.testing.assert_array_equal(p, 1.0)


def test_empty_param():
    p = np.zeros((0, 3), np.float32)
    _C.sgd_step(p, p.copy(), p.copy(), lr=0.1, momentum=0.9, first_step=True)
    assert p.shape == (0, 3)
