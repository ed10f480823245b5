"""StepLR, CosineAnnealingLR and OneCycleLR against torch.optim.lr_scheduler: the learning
rate of two parameter groups (body and a head at ten times its lr) at every step over the
whole schedule. Learning rates are Python floats computed by the same formulas (PyTorch's
recursive forms for StepLR and cosine annealing), so they agree to double rounding:
rtol 1e-9."""
import copy

import numpy as np
import pytest

from weitiao import nn
from weitiao.optim import SGD, CosineAnnealingLR, OneCycleLR, StepLR

torch = pytest.importorskip("torch")

LR_RTOL = 1e-9


def two_groups():
    ours = SGD([{"params": [nn.Parameter(np.zeros(2))]},
                {"params": [nn.Parameter(np.zeros(3))], "lr": 0.1}], lr=0.01, momentum=0.9)
    ref = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))]},
                           {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.1}],
                          lr=0.01, momentum=0.9)
    return ours, ref


def sequences(make_ours, make_ref, steps):
    """lr of every group before each of ``steps`` optimizer steps and after the last
    scheduler step (steps + 1 values per group), on both sides."""
    opt, topt = two_groups()
    sched, tsched = make_ours(opt), make_ref(topt)
    ours, ref = [], []
    for _ in range(steps):
        ours.append([g["lr"] for g in opt.param_groups])
        ref.append([g["lr"] for g in topt.param_groups])
        assert sched.get_last_lr() == ours[-1]
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    ours.append([g["lr"] for g in opt.param_groups])
    ref.append([g["lr"] for g in topt.param_groups])
    return np.array(ours), np.array(ref)


def test_step_lr_matches_torch():
    ours, ref = sequences(lambda o: StepLR(o, step_size=3, gamma=0.5),
                          lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
                          12)
    np.testing.assert_allclose(ours, ref, rtol=LR_RTOL)
    assert ours[0].tolist() == [0.01, 0.1] and ours[3].tolist() == [0.005, 0.05]


def test_cosine_annealing_matches_torch_past_t_max():
    # Two full periods: down to eta_min at T_max and back up, as PyTorch's schedule does.
    ours, ref = sequences(lambda o: CosineAnnealingLR(o, T_max=10, eta_min=1e-4),
                          lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
                              o, T_max=10, eta_min=1e-4), 20)
    np.testing.assert_allclose(ours, ref, rtol=LR_RTOL)
    np.testing.assert_allclose(ours[10], [1e-4, 1e-4], rtol=LR_RTOL)
    np.testing.assert_allclose(ours[20], [0.01, 0.1], rtol=LR_RTOL)


@pytest.mark.parametrize("kwargs", [
    dict(max_lr=[0.05, 0.5], total_steps=20),
    dict(max_lr=0.3, total_steps=37, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
])
def test_one_cycle_matches_torch_over_its_whole_length(kwargs):
    # PyTorch also cycles momentum by default; weitiao's OneCycleLR schedules the lr only,
    # so the reference runs with cycle_momentum=False.
    steps = kwargs["total_steps"]
    ours, ref = sequences(lambda o: OneCycleLR(o, **kwargs),
                          lambda o: torch.optim.lr_scheduler.OneCycleLR(
                              o, cycle_momentum=False, **kwargs), steps - 1)
    np.testing.assert_allclose(ours, ref, rtol=LR_RTOL)
    max_lr = np.broadcast_to(kwargs["max_lr"], 2)
    # the peak is max_lr, reached exactly when the warm-up ends on a whole step
    assert np.all(ours.max(axis=0) <= max_lr * (1 + 1e-12))
    assert np.all(ours.max(axis=0) > 0.99 * max_lr)
    assert ours[0] == pytest.approx(max_lr / kwargs.get("div_factor", 25.0))


def test_one_cycle_survives_a_scheduler_step_after_every_batch():
    # The usual loop: total_steps = epochs * batches, and scheduler.step() after each
    # optimizer.step(), the last one included. PyTorch accepts that last step (it raises
    # only on the step after it); so must weitiao.
    epochs, batches = 3, 5
    opt, topt = two_groups()
    sched = OneCycleLR(opt, max_lr=[0.05, 0.5], total_steps=epochs * batches)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=[0.05, 0.5],
                                                 total_steps=epochs * batches,
                                                 cycle_momentum=False)
    for _ in range(epochs):
        for _ in range(batches):
            opt.step()
            topt.step()
            tsched.step()
            sched.step()
    np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=LR_RTOL)
    topt.step()
    with pytest.raises(ValueError):
        tsched.step()  # one more is an error on both sides
    with pytest.raises(ValueError, match="total_steps=15"):
        sched.step()


def test_schedules_drive_the_optimizer_updates():
    # The lr a scheduler sets is the one the next SGD step uses, per group.
    opt, topt = two_groups()
    sched = StepLR(opt, step_size=2, gamma=0.1)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.1)
    params = [p for g in opt.param_groups for p in g["params"]]
    tparams = [p for g in topt.param_groups for p in g["params"]]
    for _ in range(5):
        for p, t in zip(params, tparams):
            p.grad = np.ones(p.shape, np.float32)
            t.grad = torch.ones(t.shape)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-6)


def test_scheduler_state_dict_round_trip():
    opt, _ = two_groups()
    sched = CosineAnnealingLR(opt, T_max=8)
    for _ in range(3):
        sched.step()
    saved = copy.deepcopy(sched.state_dict())
    now = sched.get_last_lr()
    expected = [sched.step() or sched.get_last_lr() for _ in range(4)]
    opt2, _ = two_groups()
    resumed = CosineAnnealingLR(opt2, T_max=8)
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr() == now
    got = [resumed.step() or resumed.get_last_lr() for _ in range(4)]
    assert got == expected


def test_scheduler_argument_errors():
    opt, _ = two_groups()
    with pytest.raises(ValueError, match="step_size must be >= 1, got 0"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be >= 1, got 0"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="expected 2 max_lr values, got 3"):
        OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10)
    with pytest.raises(ValueError, match="total_steps must be >= 2, got 1"):
        OneCycleLR(opt, max_lr=0.1, total_steps=1)
