"""Frozen means frozen (DESIGN.md): a frozen layer's parameters get no gradient, its
BatchNorm uses and keeps its running statistics in training mode, and backward stops below
the lowest trainable layer, so the frozen bottom keeps no activations.

Checked on ResNet-18 against PyTorch, where the same freezing is spelled
``requires_grad_(False)`` plus ``.eval()`` on the frozen modules. Tolerances as in
test_models_resnet.py (ResNet-18 holds RTOL of each tensor's max).
"""
import copy

import numpy as np
import pytest

from conftest import RTOL

torch = pytest.importorskip("torch")
import torch_resnet as tr  # noqa: E402
from test_models_resnet import (assert_all_close_scaled, assert_close_scaled,  # noqa: E402
                                make_pair, torch_single_thread)  # noqa: F401  (autouse)
from test_nn_module import kept  # noqa: E402

from weitiao import nn  # noqa: E402
from weitiao.finetune.freezing import frozen_paths  # noqa: E402
from weitiao.models import (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2,  # noqa: E402
                            mobilenet_v2, resnet18)

BOTTOM = ("conv1", "bn1", "layer1", "layer2")  # stem + layer1 + layer2


def freeze_bottom(ours, ref):
    for name in BOTTOM:
        ours.get_submodule(name).freeze()
        ref.get_submodule(name).requires_grad_(False).eval()


def step(ours, ref, x, grad_out, input_grad):
    """One training-mode forward/backward on both sides, through weitiao's ReLU masks."""
    masks = tr.record_masks([m for m in ours.modules() if isinstance(m, nn.ReLU)])
    ours.train()
    for name in BOTTOM:  # torch spells frozen BatchNorm as eval mode; ours stays in train
        ref.get_submodule(name).eval()
    y = ours(x, input_grad=input_grad)
    saved = kept(ours)
    gx = ours.backward(grad_out)
    clamp = tr.use_masks(ref, list(masks))
    xt = torch.from_numpy(x.copy()).requires_grad_(input_grad)
    ty = ref(xt)
    assert not clamp.queue
    assert clamp.worst_flip < 1e-4, (clamp.flips, clamp.worst_flip)
    ty.backward(torch.from_numpy(grad_out))
    return y, gx, saved, ty.detach().numpy(), (xt.grad.numpy() if input_grad else None)


@pytest.fixture
def frozen_pair():
    ref, ours = make_pair("resnet18")
    ref.train()
    freeze_bottom(ours, ref)
    return ref, ours


def test_frozen_bottom_matches_torch_and_stops_backward(frozen_pair, rng):
    ref, ours = frozen_pair
    before = copy.deepcopy(dict(ours.state_dict()))
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    grad_out = rng.standard_normal((2, 1000)).astype(np.float32)

    y, gx, saved, ty, _ = step(ours, ref, x, grad_out, input_grad=False)

    assert_close_scaled(y, ty, RTOL)
    assert gx is None  # nothing below layer3 wants a gradient
    # The frozen bottom (and the parameter-free stem layers on it) kept nothing in forward.
    frozen_prefixes = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2")
    assert not [n for n in saved if n.split(".")[0] in frozen_prefixes], saved
    assert "layer3.0.conv1" in saved and "fc" in saved

    grads = {n: p.grad for n, p in ours.named_parameters() if p.grad is not None}
    frozen = {n for n, p in ours.named_parameters() if n.split(".")[0] in BOTTOM}
    assert frozen and not frozen & set(grads)
    assert not any(p.requires_grad for n, p in ours.named_parameters() if n in frozen)
    tgrads = {n: p.grad.numpy() for n, p in ref.named_parameters() if p.grad is not None}
    assert set(grads) == set(tgrads) == {n for n, _ in ours.named_parameters()} - frozen
    assert_all_close_scaled(grads, tgrads, RTOL, "parameter gradients")

    state, ref_state = ours.state_dict(), {k: v.numpy() for k, v in ref.state_dict().items()}
    for k, v in state.items():
        if k.split(".")[0] in BOTTOM:  # frozen statistics: bitwise as they were
            np.testing.assert_array_equal(v, before[k], err_msg=k)
        elif k.endswith("num_batches_tracked"):
            assert int(v) == int(ref_state[k]) == int(before[k]) + 1, k
        elif "running_" in k:
            assert_close_scaled(v, ref_state[k], RTOL)


def test_frozen_bottom_with_input_grad_matches_torch(frozen_pair, rng):
    # Asking for the input gradient makes backward run through the frozen layers (with
    # BatchNorm's eval-mode derivative), still without touching their parameters.
    ref, ours = frozen_pair
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    grad_out = rng.standard_normal((2, 1000)).astype(np.float32)
    y, gx, saved, ty, tgx = step(ours, ref, x, grad_out, input_grad=True)
    assert "conv1" in saved and "layer1.0.bn1" in saved
    assert_close_scaled(y, ty, RTOL)
    assert_close_scaled(gx, tgx, RTOL)
    assert all(p.grad is None for n, p in ours.named_parameters() if n.split(".")[0] in BOTTOM)


def test_feature_extraction_trains_only_the_head(rng):
    # d2l's "freeze everything but the output layer".
    model = resnet18(num_classes=4, rng=0)
    model.freeze()
    model.fc.unfreeze()
    before = copy.deepcopy(dict(model.state_dict()))
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.train()
    y = model(x)
    assert kept(model) == ["fc"]
    assert model.backward(np.ones_like(y)) is None
    assert [n for n, p in model.named_parameters() if p.grad is not None] == ["fc.weight",
                                                                              "fc.bias"]
    for k, v in model.state_dict().items():  # every running statistic kept
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    # frozen BatchNorm normalises with running statistics: training output == eval output
    np.testing.assert_array_equal(y, model.eval()(x))


def test_unfreeze_restores_training_behaviour(rng):
    model = resnet18(num_classes=4, rng=0)
    model.layer1.freeze()
    model.layer1.unfreeze()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = model.train()(x)
    assert int(model.layer1[0].bn1.num_batches_tracked) == 1  # batch statistics again
    model.backward(np.ones_like(y))
    assert all(p.grad is not None for p in model.parameters())


def test_frozen_middle_passes_gradient_to_a_trainable_bottom(rng):
    # Backward stops below the lowest *trainable* layer, not at the first frozen one.
    model = resnet18(num_classes=4, rng=0)
    model.layer2.freeze()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = model.train()(x)
    assert any(n.startswith("layer2") for n in kept(model))  # on the path to layer1
    model.backward(np.ones_like(y))
    assert model.conv1.weight.grad is not None and model.layer1[0].conv1.weight.grad is not None
    assert all(p.grad is None for p in model.layer2.parameters())


def test_efficientnet_frozen_stages_keep_nothing(rng):
    model = efficientnet_lite0(num_classes=3, rng=0)
    for name, children in model.stages[:4]:  # stem, stage1-3
        for child in children:
            model.get_submodule(child).freeze()
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    y = model.train()(x)
    saved = kept(model)
    frozen_blocks = {f"_blocks.{i}" for i in range(5)}  # stages 1-3: blocks 0-4
    assert not [n for n in saved if n.split(".")[0] in ("_conv_stem", "_bn0", "_relu0")
                or ".".join(n.split(".")[:2]) in frozen_blocks], saved
    assert model.backward(np.ones_like(y)) is None
    trained = {n.split(".")[0] + "." + n.split(".")[1] if n.startswith("_blocks") else
               n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert "_blocks.5" in trained and "_fc" in trained
    assert not trained & (frozen_blocks | {"_conv_stem", "_bn0"})


@pytest.mark.parametrize("factory", [efficientnet_lite1, efficientnet_lite2, mobilenet_v2])
def test_freezing_by_stage_name_in_the_bigger_bodies(factory, rng):
    """freeze="stage3" (stem, stage1-3) through FineTuner's own path lookup: the frozen part
    keeps nothing, gets no gradient and keeps its running statistics; what is above it
    trains."""
    model = factory(num_classes=3, rng=0)
    paths = frozen_paths(model, "stage3")
    assert paths == [p for _, children in model.stages[:4] for p in children]
    for path in paths:
        model.get_submodule(path).freeze()
    before = copy.deepcopy(dict(model.state_dict()))
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    y = model.train()(x)
    saved = kept(model)
    assert not [n for n in saved for p in paths if n == p or n.startswith(p + ".")], saved
    assert model.backward(np.ones_like(y)) is None
    for name, p in model.named_parameters():
        frozen = any(name.startswith(path + ".") for path in paths)
        assert (p.grad is None) == frozen, name
    for k, v in model.state_dict().items():
        if any(k.startswith(path + ".") for path in paths):
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    above = model.stages[4][1][0]  # stage4's first block trains on batch statistics
    counts = [k for k in before if k.startswith(above + ".") and "num_batches" in k]
    assert counts and all(int(model.state_dict()[k]) == int(before[k]) + 1 for k in counts)
