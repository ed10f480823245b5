"""ResNet-18/34/50 against a plain-PyTorch ResNet with torchvision's names (torch_resnet.py):
the same random weights copied by name, then eval logits, training-mode logits, the input
gradient, every parameter gradient by name and the BatchNorm statistics after the step.

Tolerances. Whole networks are compared relative to the largest magnitude of the reference
tensor (atol = tol * max|expected|): an element near zero carries the absolute rounding
error of the large ones it was summed from, so an elementwise rtol would measure nothing
but cancellation. ResNet-18 meets the suite's RTOL on that scale everywhere. ResNet-50's
training-mode gradients grow about fifty-fold from fc down to conv1 through 16 bottleneck
blocks of training-mode BatchNorm, and float32 loses accordingly: PyTorch float32 itself
is about 5e-4 (of the tensor's max) away from PyTorch float64 there. Its gradients get
3e-3 on that scale, and a second check that weitiao is no further from float64 than
three times PyTorch float32 is (with a 1e-4 floor).
"""
import contextlib
import copy

import numpy as np
import pytest

from conftest import RTOL, assert_close

torch = pytest.importorskip("torch")
import torch_resnet as tr  # noqa: E402  (needs torch)

import weitiao  # noqa: E402
from weitiao import nn  # noqa: E402
from weitiao.models import ResNet, resnet18, resnet34, resnet50  # noqa: E402

TORCH_REFS = {"resnet18": tr.resnet18, "resnet34": tr.resnet34, "resnet50": tr.resnet50}
OURS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}

# ResNet-50 training-mode gradients, relative to each tensor's max (see the module doc).
R50_GRAD_TOL = 3e-3
R50_LOGIT_TOL = 5e-4   # observed 1e-4: 50 layers of float32 accumulation at max|logit| ~ 100
R50_STAT_TOL = 5e-4    # observed 6e-5 on running_var of layer4, same accumulation


@pytest.fixture(scope="module", autouse=True)
def torch_single_thread():
    """Run the PyTorch oracle on one thread: its OpenMP pool and weitiao's take turns on
    the same 2 cores, and with both at 2 threads each side's spinning workers slow the
    other's next call several-fold (measured 0.25 s -> 7 s for a Lite0 training step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scaled_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|, in float64."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != expected {e.shape}"
    return float(np.abs(a - e).max() / max(np.abs(e).max(), 1e-30))


def assert_close_scaled(actual, expected, tol):
    """assert_close with atol = tol * max|expected| (and the suite's rtol)."""
    scale = float(np.abs(np.asarray(expected, np.float64)).max())
    assert_close(actual, expected, rtol=RTOL, atol=tol * scale)


def assert_all_close_scaled(actual: dict, expected: dict, tol: float, what: str):
    """Every entry by name, each on its own scale; lists every name over tolerance."""
    assert set(actual) == set(expected), f"{what}: names differ: {set(actual) ^ set(expected)}"
    errors = {k: scaled_error(actual[k], expected[k]) for k in expected}
    bad = {k: f"{e:.2e}" for k, e in errors.items() if not e <= tol}
    assert not bad, f"{what} over {tol:g} of their max: {bad}"
    return errors


def randomize_bn(model, gen):
    """Non-trivial BatchNorm parameters and running statistics (torchvision's init leaves
    them 1, 0, 0, 1, which would hide a swapped or ignored argument)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.2, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.num_batches_tracked.fill_(7)


def make_pair(arch, seed=0):
    """(torch reference, weitiao model) holding identical random weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref = TORCH_REFS[arch]()
    randomize_bn(ref, torch.Generator().manual_seed(seed + 1))
    ours = OURS[arch](rng=seed)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    return ref, ours


@contextlib.contextmanager
def winograd_off():
    weitiao.set_winograd(False)
    try:
        yield
    finally:
        weitiao.set_winograd(True)


def torch_state(model) -> dict:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def run_torch_train(ref, x, grad_out, masks, dtype=torch.float32):
    """Training-mode forward and backward of the reference, through weitiao's ReLU masks.
    Returns logits, input gradient, parameter gradients by name and the clamp (flip
    counts)."""
    ref = ref.to(dtype).train()
    clamp = tr.use_masks(ref, list(masks))
    xt = torch.from_numpy(x.copy()).to(dtype).requires_grad_(True)
    y = ref(xt)
    assert not clamp.queue, "weitiao and the reference fired a different number of ReLUs"
    y.backward(torch.from_numpy(grad_out).to(dtype))
    grads = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads, clamp


def run_ours_train(model, x, grad_out):
    """Training-mode forward with input_grad=True and backward; returns logits, input
    gradient, parameter gradients by name and the recorded ReLU masks."""
    masks = tr.record_masks([m for m in model.modules() if isinstance(m, nn.ReLU)])
    model.train()
    y = model(x, input_grad=True)
    gx = model.backward(grad_out)
    grads = {n: p.grad for n, p in model.named_parameters()}
    return y, gx, grads, masks


def check_flips(clamp):
    """Any ReLU decision that differs between the two sides is at the kink up to rounding
    (the forwards agree to ~1e-5 of max; a real bug disagrees far from the kink)."""
    assert clamp.worst_flip < 1e-4, (clamp.flips, clamp.worst_flip)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_state_dict_names_and_shapes_are_torchvisions(arch):
    with torch.random.fork_rng():
        ref = TORCH_REFS[arch]()
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = OURS[arch](rng=0).state_dict()
    assert set(ours) == set(ref_shapes)
    assert list(ours) == list(ref_shapes)  # same order too, as torch.save would write it
    assert {k: v.shape for k, v in ours.items()} == ref_shapes
    assert ours["bn1.num_batches_tracked"].dtype == np.int64
    assert all(v.dtype == np.float32 for k, v in ours.items() if "num_batches" not in k)


def test_parameter_counts_match_torchvision():
    # torchvision's published sizes: 11,689,512 / 21,797,672 / 25,557,032 parameters
    for fn, count in ((resnet18, 11_689_512), (resnet34, 21_797_672), (resnet50, 25_557_032)):
        assert sum(p.size for p in fn(rng=0).parameters()) == count


# --------------------------------------------------------------------------- eval


@pytest.mark.parametrize("arch,size", [("resnet18", 64), ("resnet50", 64)])
def test_eval_logits_match_torch(arch, size, rng):
    ref, ours = make_pair(arch)
    x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = ref.eval()(torch.from_numpy(x)).numpy()
    before = copy.deepcopy(ours.state_dict())
    got = ours.eval()(x)
    # Eval logits of either depth: ~1e-6 of max observed; RTOL of max (module doc).
    assert_close_scaled(got, expected, RTOL)
    for k, v in ours.state_dict().items():  # eval mode leaves the statistics alone
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# --------------------------------------------------------------------------- training


def test_resnet18_training_step_matches_torch(rng):
    ref, ours = make_pair("resnet18")
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    grad_out = rng.standard_normal((2, 1000)).astype(np.float32)

    y, gx, grads, masks = run_ours_train(ours, x, grad_out)
    ty, tgx, tgrads, clamp = run_torch_train(ref, x, grad_out, masks)
    check_flips(clamp)

    # ResNet-18 holds the suite's RTOL on the max-magnitude scale (observed <= 2e-5).
    assert_close_scaled(y, ty, RTOL)
    assert gx is not None and gx.shape == x.shape
    assert_close_scaled(gx, tgx, RTOL)
    assert_all_close_scaled(grads, tgrads, RTOL, "parameter gradients")

    ours_state, ref_state = ours.state_dict(), torch_state(ref)
    stats = {k: ours_state[k] for k in ref_state if "running_" in k}
    assert_all_close_scaled(stats, {k: ref_state[k] for k in stats}, RTOL, "running stats")
    for k in ref_state:
        if k.endswith("num_batches_tracked"):
            assert int(ours_state[k]) == int(ref_state[k]) == 8, k
        elif "running_" not in k:  # parameters do not move without an optimizer
            np.testing.assert_array_equal(ours_state[k], ref_state[k], err_msg=k)


def test_resnet50_training_step_matches_torch(rng):
    ref, ours = make_pair("resnet50")
    ref64 = copy.deepcopy(ref)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    grad_out = rng.standard_normal((2, 1000)).astype(np.float32)

    y, gx, grads, masks = run_ours_train(ours, x, grad_out)
    ty, tgx, tgrads, clamp = run_torch_train(ref, x, grad_out, masks)
    check_flips(clamp)

    assert_close_scaled(y, ty, R50_LOGIT_TOL)
    assert_close_scaled(gx, tgx, R50_GRAD_TOL)
    ours_err = assert_all_close_scaled(grads, tgrads, R50_GRAD_TOL, "parameter gradients")
    assert max(ours_err.values()) > 0  # a real comparison, not two copies of one array

    ours_state, ref_state = ours.state_dict(), torch_state(ref)
    stats = {k: ours_state[k] for k in ref_state if "running_" in k}
    assert_all_close_scaled(stats, {k: ref_state[k] for k in stats}, R50_STAT_TOL,
                            "running stats")
    for k in ref_state:
        if k.endswith("num_batches_tracked"):
            assert int(ours_state[k]) == int(ref_state[k]) == 8, k

    # Distance to float64 against PyTorch float32's own. The direct path is as accurate as
    # PyTorch (observed 0.4x-1.1x over seeds 1-5); Winograd F(4x4, 3x3) rounds each 3x3 layer 10-40x more, which
    # 50 layers bring to 1.4x-3.5x PyTorch's gradient error (observed over seeds, see
    # docs/performance.md), so it gets twice the room.
    weitiao_err, torch32 = float64_errors(ref64, grads, gx, tgrads, tgx, x, grad_out, masks)
    assert weitiao_err <= 6 * torch32 + 1e-4, (weitiao_err, torch32)
    with winograd_off():
        ref, ours = make_pair("resnet50")
        _, gx, grads, masks = run_ours_train(ours, x, grad_out)
    _, tgx, tgrads, _ = run_torch_train(ref, x, grad_out, masks)
    direct_err, torch32 = float64_errors(ref64, grads, gx, tgrads, tgx, x, grad_out, masks)
    assert direct_err <= 2 * torch32 + 1e-5, (direct_err, torch32)


def float64_errors(ref64, grads, gx, tgrads, tgx, x, grad_out, masks):
    """Largest scaled distance of weitiao's and of PyTorch float32's gradients to float64's,
    with the ReLUs of all three deciding as weitiao did."""
    _, g64x, g64, _ = run_torch_train(copy.deepcopy(ref64), x, grad_out, masks,
                                      dtype=torch.float64)
    torch32 = max([scaled_error(tgrads[n], g64[n]) for n in g64] + [scaled_error(tgx, g64x)])
    ours = max([scaled_error(grads[n], g64[n]) for n in g64] + [scaled_error(gx, g64x)])
    return ours, torch32


def test_backward_without_input_grad_returns_none_and_same_param_grads(rng):
    _, ours = make_pair("resnet18")
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    g = rng.standard_normal((2, 1000)).astype(np.float32)
    state = copy.deepcopy(ours.state_dict())
    ours.train()
    ours(x, input_grad=True)
    assert ours.backward(g) is not None
    with_input = {n: p.grad.copy() for n, p in ours.named_parameters()}
    ours.zero_grad()
    ours.load_state_dict(state)  # same running statistics before the second forward
    ours(x)
    assert ours.backward(g) is None
    for n, p in ours.named_parameters():
        # the same kernels on the same data: bitwise equal, not just close
        np.testing.assert_array_equal(p.grad, with_input[n], err_msg=n)


# --------------------------------------------------------------------------- head, stages


@pytest.mark.parametrize("fn,features", [(resnet18, 512), (resnet50, 2048)])
def test_replace_head_xavier_uniform(fn, features):
    model = fn(rng=0)
    old = model.fc
    head = model.replace_head(7, rng=1)
    assert model.fc is head and head is not old
    assert isinstance(head, nn.Linear)
    assert (head.in_features, head.out_features) == (features, 7) == (old.in_features, 7)
    assert head.weight.shape == (7, features) and head.bias.shape == (7,)
    assert model.num_classes == 7 and model.head is head
    bound = np.sqrt(6.0 / (features + 7))  # Glorot and Bengio (2010), gain 1
    w = head.weight.data
    assert np.abs(w).max() <= bound
    # U(-b, b): std b/sqrt(3); with 7*features draws the sample std is within 3%.
    assert abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.03
    assert np.abs(w).max() > 0.95 * bound and abs(w.mean()) < 0.05 * bound
    assert np.abs(head.bias.data).max() <= 1 / np.sqrt(features)  # PyTorch's default
    assert "fc.weight" in model.state_dict() and model.state_dict()["fc.weight"] is w
    assert model.eval()(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 7)


def test_replace_head_is_seeded_and_checks_its_argument():
    a = resnet18(rng=0).replace_head(5, rng=3).weight.data
    b = resnet18(rng=0).replace_head(5, rng=3).weight.data
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="num_classes"):
        resnet18(rng=0).replace_head(0)


def test_num_classes_builds_the_head_and_stages_name_the_layers():
    model = resnet18(num_classes=10, rng=0)
    assert isinstance(model, ResNet) and model.fc.out_features == 10
    assert model.stage_names() == ["stem", "layer1", "layer2", "layer3", "layer4"]
    for _, children in model.stages:
        for child in children:
            model.get_submodule(child)  # every stage member exists
    cfg = model.config
    assert (cfg.input_size, cfg.resize_size) == (224, 256)
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
    assert len(cfg.class_names) == 1000 and cfg.class_names[934] == "hotdog"


def test_same_seed_same_weights():
    a, b, c = resnet18(rng=5), resnet18(rng=5), resnet18(rng=6)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(),
                               c.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    assert not np.array_equal(a.conv1.weight.data, c.conv1.weight.data)
