"""weitiao.optim.SGD against torch.optim.SGD: parameter groups with their own lr, momentum,
dampening, Nesterov and weight decay, parameters without a gradient, and a state-dict
round trip; on raw parameters with fixed gradients and on a small network trained for ten
steps. (The single-tensor update kernel has its own tests in test_sgd.py.)"""
import copy

import numpy as np
import pytest

from conftest import assert_close
from weitiao import nn
from weitiao.optim import SGD

torch = pytest.importorskip("torch")

STEPS = 10

# Three groups covering every option: the per-group values override the defaults below.
GROUPS = [
    dict(lr=0.01, momentum=0.9, dampening=0.1, weight_decay=1e-3),
    dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=5e-4),
    dict(lr=0.05),  # defaults: momentum 0.5, no weight decay
]
DEFAULTS = dict(lr=0.02, momentum=0.5)
SHAPES = [[(3, 4), (5,)], [(2, 3, 3), (7,)], [(6,)]]


def make_params(rng):
    """The same initial values as weitiao Parameters and torch Parameters, per group."""
    values = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for shapes in SHAPES]
    ours = [[nn.Parameter(v.copy()) for v in group] for group in values]
    ref = [[torch.nn.Parameter(torch.from_numpy(v.copy())) for v in group] for group in values]
    return ours, ref


def optimizers(ours, ref):
    opt = SGD([{"params": ps, **g} for ps, g in zip(ours, GROUPS)], **DEFAULTS)
    topt = torch.optim.SGD([{"params": ps, **g} for ps, g in zip(ref, GROUPS)], **DEFAULTS)
    return opt, topt


def gradients(rng, steps=STEPS):
    return [[[rng.standard_normal(s).astype(np.float32) for s in shapes] for shapes in SHAPES]
            for _ in range(steps)]


def set_grads(ours, ref, grads):
    for og, tg, gg in zip(ours, ref, grads):
        for o, t, g in zip(og, tg, gg):
            o.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())


def assert_params_equal(ours, ref):
    for og, tg in zip(ours, ref):
        for o, t in zip(og, tg):
            # float32 updates summed over ten steps: the suite's tolerances hold.
            assert_close(o.data, t.detach().numpy())


def test_groups_match_torch_over_ten_steps(rng):
    ours, ref = make_params(rng)
    opt, topt = optimizers(ours, ref)
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.8, 0.5]
    assert [g["nesterov"] for g in opt.param_groups] == [False, True, False]
    for grads in gradients(rng):
        set_grads(ours, ref, grads)
        opt.step()
        topt.step()
        assert_params_equal(ours, ref)


def test_parameters_without_gradient_are_skipped(rng):
    ours, ref = make_params(rng)
    opt, topt = optimizers(ours, ref)
    idle_o, idle_t = ours[0][0], ref[0][0]
    start = idle_o.data.copy()
    grads = gradients(rng)
    for i, g in enumerate(grads):
        set_grads(ours, ref, g)
        if i < 3:  # no gradient for the first three steps (e.g. an unused branch)
            idle_o.grad, idle_t.grad = None, None
        opt.step()
        topt.step()
        if i < 3:
            np.testing.assert_array_equal(idle_o.data, start)
            assert id(idle_o) not in opt.state  # no momentum buffer yet either
    # from step 4 on it starts momentum afresh, as torch does
    assert_params_equal(ours, ref)


def test_frozen_parameters_are_not_updated_even_with_a_gradient(rng):
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    p.requires_grad = False
    p.grad = q.grad = np.ones(3, np.float32)
    opt.step()
    np.testing.assert_array_equal(p.data, np.ones(3))
    assert_close(q.data, np.full(3, 0.9))


def test_state_dict_round_trip_continues_identically(rng):
    grads = gradients(rng)
    ours, ref = make_params(rng)
    straight, _ = optimizers(ours, ref)
    resumed_params = copy.deepcopy(ours)
    for g in grads:
        set_grads(ours, ref, g)
        straight.step()

    first, _ = optimizers(resumed_params, ref)
    for g in grads[:4]:
        set_grads(resumed_params, ref, g)
        first.step()
    first.param_groups[1]["lr"] = 0.1  # unchanged value, but a group option travels too
    saved = copy.deepcopy(first.state_dict())  # what a checkpoint file would hold
    assert len(saved["momentum_buffers"]) == 5
    second = SGD([{"params": ps} for ps in resumed_params], lr=123.0)  # options come back
    second.load_state_dict(saved)
    assert [g["lr"] for g in second.param_groups] == [0.01, 0.1, 0.05]
    assert second.param_groups[1]["nesterov"] is True
    for g in grads[4:]:
        set_grads(resumed_params, ref, g)
        second.step()
    for og, rg in zip(ours, resumed_params):
        for o, r in zip(og, rg):
            np.testing.assert_array_equal(o.data, r.data)  # bitwise: same arithmetic


def test_load_state_dict_checks_the_layout(rng):
    ours, ref = make_params(rng)
    opt, _ = optimizers(ours, ref)
    set_grads(ours, ref, gradients(rng, 1)[0])
    opt.step()
    state = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match="expected 2 parameter groups, got 3"):
        SGD([{"params": ours[0]}, {"params": ours[1]}]).load_state_dict(state)
    state["momentum_buffers"]["0.0"] = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"momentum buffer 0\.0: expected shape \(3, 4\), "
                                         r"got \(4, 3\)"):
        SGD([{"params": ps} for ps in ours]).load_state_dict(state)


def test_argument_errors():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([])
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum > 0 and zero "
                                         "dampening"):
        SGD([p], momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="group 1: lr must be >= 0, got -0.1"):
        SGD([{"params": [p]}, {"params": [nn.Parameter(np.zeros(1))], "lr": -0.1}])
    with pytest.raises(ValueError, match="more than one group"):
        SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match=r"unknown options \['betas'\]"):
        SGD([{"params": [p], "betas": (0.9, 0.99)}])
    with pytest.raises(TypeError, match="holds a ndarray, expected weitiao.nn.Parameter"):
        SGD([np.zeros(2)])


def test_zero_grad(rng):
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(3))
    opt = SGD([{"params": [p]}, {"params": [q], "lr": 1.0}])
    p.grad, q.grad = np.ones(2, np.float32), np.ones(3, np.float32)
    opt.zero_grad(set_to_none=False)
    assert not p.grad.any() and not q.grad.any()
    opt.zero_grad()
    assert p.grad is None and q.grad is None


# --------------------------------------------------------------------------- a network


def small_nets():
    ours = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, rng=0), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 4, rng=0))
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6),
                              torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(96, 4))
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return ours, ref


def test_fine_tuning_a_small_network_matches_torch(rng):
    # The body at a small learning rate, the head at ten times that (d2l's recipe), with
    # momentum and weight decay; ten steps of forward, loss, backward and update.
    ours, ref = small_nets()
    body = [p for n, p in ours.named_parameters() if not n.startswith("5.")]
    opt = SGD([{"params": body}, {"params": list(ours[5].parameters()), "lr": 0.1}],
              lr=0.01, momentum=0.9, weight_decay=1e-3)
    tbody = [p for n, p in ref.named_parameters() if not n.startswith("5.")]
    topt = torch.optim.SGD([{"params": tbody}, {"params": ref[5].parameters(), "lr": 0.1}],
                           lr=0.01, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    losses, tlosses = [], []
    for _ in range(STEPS):
        x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
        labels = rng.integers(0, 4, 8)
        opt.zero_grad()
        losses.append(loss_fn(ours(x), labels))
        ours.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)),
                                                 torch.from_numpy(labels))
        loss.backward()
        topt.step()
        tlosses.append(loss.item())
    # Ten coupled float32 steps (the updates feed the next forward): the suite's
    # tolerances still hold; observed differences are ~1e-6.
    assert_close(losses, tlosses)
    state, tstate = ours.state_dict(), ref.state_dict()
    for k in tstate:
        assert_close(state[k], tstate[k].numpy())
