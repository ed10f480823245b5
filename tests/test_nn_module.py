"""The Module protocol of weitiao.nn: state dicts (names, strict loading, all-or-nothing),
planned backward (what forward keeps, what backward returns), summary() and repr, and the
module-level Dropout and CrossEntropyLoss (their kernels have their own tests)."""
import copy

import numpy as np
import pytest

from conftest import assert_close
from weitiao import nn
from weitiao.models import resnet18

SAVED_ATTRS = ("_saved", "_shape", "_keep")


def kept(model) -> list[str]:
    """Names of the modules holding anything for backward."""
    return [name for name, m in model.named_modules()
            if any(m.__dict__.get(a) is not None for a in SAVED_ATTRS)]


def snapshot(model) -> dict:
    return copy.deepcopy(dict(model.state_dict()))


def assert_unchanged(model, before: dict):
    after = model.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


def small_net(rng=0):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5, rng=rng))


@pytest.fixture(scope="module")
def model10():
    return resnet18(num_classes=10, rng=0)


# --------------------------------------------------------------------------- state dict


def test_state_dict_holds_parameters_and_buffers_by_dotted_name():
    net = small_net()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "1.num_batches_tracked", "5.weight", "5.bias"]
    assert sd["0.weight"] is net[0].weight.data  # the module's own arrays, as documented
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"] == 0


def test_load_state_dict_copies_values(rng):
    a, b = small_net(rng=1), small_net(rng=2)
    source = {k: v.copy() for k, v in a.state_dict().items()}
    missing, unexpected = b.load_state_dict(source)
    assert missing == [] and unexpected == []
    assert_unchanged(b, a.state_dict())
    source["0.weight"][...] = 123.0  # b holds copies, not the caller's arrays
    assert not np.any(b[0].weight.data == 123.0)
    # float64 (e.g. from a .npz) is cast to the float32 parameters
    b.load_state_dict({k: (v.astype(np.float64) if v.dtype == np.float32 else v)
                       for k, v in a.state_dict().items()})
    assert b[0].weight.data.dtype == np.float32
    assert_unchanged(b, a.state_dict())


def test_strict_load_names_missing_keys(model10):
    state = snapshot(model10)
    bad = {k: v + 1 if v.dtype == np.float32 else v for k, v in state.items()}
    del bad["fc.bias"], bad["layer2.0.downsample.1.running_var"]
    with pytest.raises(ValueError, match=r"ResNet\.load_state_dict: missing keys: "
                                         r"layer2\.0\.downsample\.1\.running_var, fc\.bias"):
        model10.load_state_dict(bad)
    assert_unchanged(model10, state)


def test_strict_load_names_unexpected_keys(model10):
    state = snapshot(model10)
    bad = {k: v + 1 if v.dtype == np.float32 else v for k, v in state.items()}
    bad["fc.extra"] = np.zeros(3, np.float32)
    bad["module.conv1.weight"] = state["conv1.weight"]
    with pytest.raises(ValueError, match=r"unexpected keys: fc\.extra, module\.conv1\.weight"):
        model10.load_state_dict(bad)
    assert_unchanged(model10, state)


def test_load_names_shape_mismatches_even_when_not_strict(model10):
    state = snapshot(model10)
    imagenet = {k: v + 1 if v.dtype == np.float32 else v for k, v in state.items()}
    imagenet["fc.weight"] = np.zeros((1000, 512), np.float32)
    imagenet["fc.bias"] = np.zeros(1000, np.float32)
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"shape mismatch for fc\.weight: expected "
                                             r"\(10, 512\), got \(1000, 512\); fc\.bias: "
                                             r"expected \(10,\), got \(1000,\)"):
            model10.load_state_dict(imagenet, strict=strict)
        assert_unchanged(model10, state)


def test_all_problems_are_reported_together(model10):
    state = snapshot(model10)
    bad = dict(state)
    del bad["conv1.weight"]
    bad["fc.weight"] = np.zeros((3, 3), np.float32)
    bad["junk"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError) as info:
        model10.load_state_dict(bad)
    text = str(info.value)
    assert "fc.weight" in text and "missing keys: conv1.weight" in text and "junk" in text


def test_non_strict_load_returns_missing_and_unexpected(model10):
    state = snapshot(model10)
    partial = {k: v + 1 for k, v in state.items() if k.startswith("fc.")}
    partial["classifier.weight"] = np.zeros(1, np.float32)
    missing, unexpected = model10.load_state_dict(partial, strict=False)
    assert unexpected == ["classifier.weight"]
    assert set(missing) == set(state) - {"fc.weight", "fc.bias"}
    assert_close(model10.fc.weight.data, state["fc.weight"] + 1)
    model10.load_state_dict(state)  # restore for the other tests of this module


def test_failed_dtype_check_changes_nothing(model10):
    # load_state_dict promises "nothing is changed unless every check passes". A checkpoint
    # whose num_batches_tracked is stored as a float (as some converters write it) fails
    # the dtype check; every array before it in the state dict must still be untouched.
    state = snapshot(model10)
    bad = {k: v + 1 if v.dtype == np.float32 else v for k, v in state.items()}
    bad["layer4.1.bn2.num_batches_tracked"] = np.array(5.0)
    try:
        with pytest.raises(ValueError, match=r"layer4\.1\.bn2\.num_batches_tracked"):
            model10.load_state_dict(bad)
        assert_unchanged(model10, state)
    finally:
        model10.load_state_dict(state)


# --------------------------------------------------------------------------- planning


def test_training_forward_keeps_what_backward_needs_and_backward_releases_it(rng):
    net = small_net()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    net.train()
    y = net(x)
    assert kept(net) == ["0", "1", "2", "3", "4", "5"]
    assert net.backward(np.ones_like(y)) is None  # x did not ask for a gradient
    assert kept(net) == []
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(RuntimeError, match="nothing was saved by forward"):
        net.backward(np.ones_like(y))


def test_input_grad_asks_backward_for_the_input_gradient(rng):
    net = small_net()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = net(x, input_grad=True)
    gx = net.backward(np.ones_like(y))
    assert gx.shape == x.shape and gx.dtype == np.float32 and np.abs(gx).max() > 0
    # the next outermost call plans again: without input_grad, backward returns None
    y = net(x)
    assert net.backward(np.ones_like(y)) is None


def test_eval_mode_keeps_nothing(rng):
    model = resnet18(num_classes=10, rng=0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.train()
    model(x, input_grad=True)
    assert len(kept(model)) > 50
    model.eval()
    model(x, input_grad=True)  # even when asked for the input gradient
    assert kept(model) == []
    with pytest.raises(RuntimeError, match="forward in training mode"):
        model.backward(np.ones((2, 10), np.float32))


def test_requires_grad_false_keeps_batch_statistics_but_gets_no_gradient(rng, torch):
    # requires_grad_(False) alone is PyTorch's requires_grad: BatchNorm still normalises
    # with (and updates) batch statistics in training mode; only freeze() changes that.
    net = small_net()
    net[1].requires_grad_(False)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = net.train()(x)
    net.backward(np.ones_like(y))
    assert net[1].weight.grad is None and net[1].bias.grad is None
    assert net[0].weight.grad is not None  # backward went on below the BatchNorm
    assert int(net[1].num_batches_tracked) == 1
    bn = torch.nn.BatchNorm2d(4)
    conv_out = net[0].eval()(x)  # eval: Conv2d has no mode, just no planning side effects
    bn(torch.from_numpy(conv_out))
    assert_close(net[1].running_mean, bn.running_mean.numpy())
    assert_close(net[1].running_var, bn.running_var.numpy())


def test_zero_grad_clears_to_none_or_zeros(rng):
    net = small_net()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = net(x)
    net.backward(np.ones_like(y))
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_gradients_accumulate_over_backward_calls(rng):
    net = small_net()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = net(x)
    net.backward(np.ones_like(y))
    first = {n: p.grad.copy() for n, p in net.named_parameters()}
    net(x)  # training mode: batch statistics, so the same gradient again
    net.backward(np.ones_like(y))
    for n, p in net.named_parameters():
        assert_close(p.grad, 2 * first[n])


# --------------------------------------------------------------------------- display


def test_summary_lists_layers_shapes_parameters_and_frozen_state():
    model = resnet18(num_classes=10, rng=0)
    model.conv1.freeze()
    model.bn1.freeze()
    model.layer1.freeze()
    summary = model.summary((1, 3, 32, 32))
    lines = str(summary).splitlines()
    assert lines[2].split() == ["layer", "type", "output", "shape", "params", "trainable",
                                "stage"]
    rows = {line.split()[0]: line for line in lines if line and line[0] not in "=-"}
    assert rows["conv1"].split()[1:] == ["Conv2d", "(1,", "64,", "16,", "16)", "9,408",
                                         "frozen", "stem"]
    assert rows["maxpool"].split()[1:] == ["MaxPool2d", "(1,", "64,", "8,", "8)", "0"]
    assert "frozen" in rows["layer1.1.bn2"]
    assert rows["layer4.1.conv2"].split()[-3:] == ["2,359,296", "yes", "layer4"]
    assert rows["fc"].split()[1:] == ["Linear", "(1,", "10)", "5,130", "yes", "head"]
    total = sum(p.size for p in model.parameters())
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    assert f"Total params: {total:,} (42.65 MiB as float32)" in lines
    assert f"Trainable params: {trainable:,}" in lines
    assert f"Frozen params: {total - trainable:,}" in lines
    assert (summary.total_params, summary.trainable_params) == (total, trainable) == \
        (11_181_642, 11_181_642 - 9_408 - 128 - 147_968)
    leaves = [n for n, m in model.named_modules() if not m._modules]
    assert [r.name for r in summary.rows] == leaves  # every leaf once, in forward order
    assert repr(summary) == str(summary)  # a notebook shows the table


def test_summary_leaves_the_model_as_it_was(rng):
    model = resnet18(num_classes=10, rng=0)
    before = snapshot(model)
    model.summary((2, 3, 32, 32))
    assert model.training and all(m.training for m in model.modules())
    assert_unchanged(model, before)  # eval-mode forward: no statistics moved
    assert all(p.grad is None for p in model.parameters())
    assert kept(model) == []


def test_summary_keeps_per_module_modes():
    # A common fine-tuning set-up puts frozen BatchNorm layers in eval mode by hand;
    # printing a summary must not switch them back to training mode.
    model = resnet18(num_classes=10, rng=0)
    model.train()
    model.layer1.eval()
    model.summary((1, 3, 32, 32))
    assert model.training
    assert not model.layer1.training and not model.layer1[0].bn1.training


def test_repr_is_readable(model10):
    text = repr(model10)
    assert text.startswith("ResNet(\n  (conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), "
                           "padding=(3, 3), bias=False)\n  (bn1): BatchNorm2d(64, eps=1e-05, "
                           "momentum=0.1)\n  (relu): ReLU()\n  (maxpool): MaxPool2d(")
    assert "\n  (layer1): Sequential(\n    (0): BasicBlock(\n      (conv1): Conv2d(64, 64" in text
    assert "(downsample): Sequential(\n        (0): Conv2d(64, 128, kernel_size=(1, 1), " \
           "stride=(2, 2), bias=False)" in text
    assert text.rstrip().endswith("(fc): Linear(in_features=512, out_features=10, bias=True)\n)")
    assert repr(nn.Parameter(np.zeros((2, 3)), requires_grad=False)) == \
        "Parameter(shape=(2, 3), requires_grad=False)"
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"


# --------------------------------------------------------------------------- dropout


def test_dropout_is_reproducible_for_a_seed():
    x = np.ones((4, 1000), np.float32)
    a, b, c = nn.Dropout(0.3, rng=11), nn.Dropout(0.3, rng=11), nn.Dropout(0.3, rng=12)
    ya, yb, yc = a(x), b(x), c(x)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert not np.array_equal(a(x), ya)  # the next call draws a new mask
    # the same Generator object continues its stream: seed 11 twice = two successive calls
    gen = np.random.default_rng(11)
    d = nn.Dropout(0.3, rng=gen)
    np.testing.assert_array_equal(d(x), ya)
    # inverted dropout: kept values are scaled by 1 / (1 - p); 4000 draws, 5 std < 0.04
    values = np.unique(ya)
    assert len(values) == 2 and values[0] == 0.0
    assert values[1] == pytest.approx(1 / 0.7, rel=1e-6)
    assert abs(np.mean(ya == 0) - 0.3) < 0.04


def test_dropout_backward_uses_the_forward_mask(rng):
    drop = nn.Dropout(0.5, rng=0)
    x = rng.uniform(0.5, 1.5, (3, 200)).astype(np.float32)
    y = drop(x, input_grad=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gx = drop.backward(g)
    np.testing.assert_array_equal(gx == 0, y == 0)
    assert_close(gx[y != 0], 2.0 * g[y != 0])


def test_dropout_is_identity_in_eval_and_checks_p():
    x = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(nn.Dropout(0.9, rng=0).eval()(x), x)
    np.testing.assert_array_equal(nn.Dropout(0.0, rng=0)(x), x)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


# --------------------------------------------------------------------------- loss


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_cross_entropy_loss_matches_torch(rng, torch, smoothing, scale):
    logits = (scale * rng.standard_normal((6, 9))).astype(np.float32)
    labels = rng.integers(0, 9, 6)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing)
    loss = loss_fn(logits, labels)
    grad = loss_fn.backward()

    t = torch.from_numpy(logits.copy()).requires_grad_(True)
    ref = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(t, torch.from_numpy(labels))
    ref.backward()
    assert isinstance(loss, float)
    # A mean of logsumexps of logits up to ~150: float32 relative accuracy on the loss.
    assert loss == pytest.approx(ref.item(), rel=1e-5, abs=1e-6)
    assert_close(grad, t.grad.numpy())
    with pytest.raises(RuntimeError, match="call the loss on logits first"):
        loss_fn.backward()


def test_cross_entropy_gradient_drives_a_model_backward(rng, torch):
    net = small_net()
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    labels = np.array([0, 4, 2, 2])
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(net(x), labels)
    net.backward(loss_fn.backward())

    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(64, 5))
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in small_net().state_dict()
                         .items()})
    out = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(labels))
    out.backward()
    ours = dict(net.named_parameters())
    assert set(ours) == {n for n, _ in ref.named_parameters()}
    for n, p in ref.named_parameters():
        assert_close(ours[n].grad, p.grad.numpy())
