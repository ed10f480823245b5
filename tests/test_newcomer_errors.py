"""The API tried as a newcomer would (issue 17): each mistake gets an error that names the
cause and says what to do. The command-line cases are in test_cli_errors.py."""
import numpy as np
import pytest
from conftest import small_resnet18

from weitiao import nn
from weitiao.finetune import FineTuner
from weitiao.finetune.guard import check_finite_input
from weitiao.io import load_state_dict
from weitiao.models import efficientnet_lite0, resnet18


@pytest.fixture(scope="module")
def model():
    return resnet18(num_classes=3, rng=0)


def images(n=2, size=32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


# --------------------------------------------------------------------------- forward, backward

CALL_THE_MODULE = r"forward\(x\) was called directly .*call the module, layer\(x\) or " \
                  r"model\(x\), so it keeps what backward needs"


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(3, 4, 3, rng=0), (2, 3, 8, 8)),
    (nn.Linear(3, 4, rng=0), (2, 3)),
    (nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (nn.ReLU(), (2, 3)),
    (nn.MaxPool2d(2), (2, 3, 4, 4)),
])
def test_forward_then_backward_says_call_the_module(layer, shape):
    x = np.ones(shape, np.float32)
    y = layer.forward(x)
    with pytest.raises(RuntimeError, match=rf"^{type(layer).__name__}\.backward: nothing was "
                                           rf"saved by forward: {type(layer).__name__}\."
                                           + CALL_THE_MODULE):
        layer.backward(np.ones_like(y))


def test_calling_the_module_is_the_fix():
    conv = nn.Conv2d(3, 4, 3, rng=0)
    x = np.ones((2, 3, 8, 8), np.float32)
    y = conv(x)
    assert conv.backward(np.ones_like(y)) is None and conv.weight.grad is not None


def test_a_containers_forward_then_backward_says_call_the_model(model):
    """model.forward(x) plans nothing, so the children plan one by one and backward would
    stop after the head; it is refused instead, and the forward itself still works."""
    x = images()
    model.train()
    for net in (model, nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.ReLU()), model.layer1[0]):
        inp = x if net is not model.layer1[0] else np.ones((2, 64, 8, 8), np.float32)
        y = net.forward(inp)
        with pytest.raises(RuntimeError, match=rf"^{type(net).__name__}\.backward: nothing "
                                               rf"was planned for backward: "
                                               rf"{type(net).__name__}\." + CALL_THE_MODULE):
            net.backward(np.ones_like(y))
    model.eval()
    np.testing.assert_array_equal(model.forward(x), model(x))  # inference either way


def test_other_reasons_for_nothing_saved(model):
    relu = nn.ReLU()
    y = relu(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"ReLU.backward: nothing was saved by forward: "
                                           r"this layer has nothing to train .*"
                                           r"model\(x, input_grad=True\)"):
        relu.backward(np.ones_like(y))
    x = images()
    model.eval()
    model(x)
    model.train()
    with pytest.raises(RuntimeError, match=r"the last forward ran in eval mode; call backward "
                                           r"after a forward in training mode"):
        model.backward(np.ones((2, 3), np.float32))
    y = model(x)
    model.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match=r"backward already ran for the last forward"):
        model.backward(np.ones_like(y))


# --------------------------------------------------------------------------- model inputs

@pytest.mark.parametrize("x, kind, pattern", [
    (np.zeros((2, 224, 224, 3), np.float32), ValueError,
     r"^resnet18: got \(2, 224, 224, 3\); expected \(N, 3, H, W\): the channels come last "
     r"\(NHWC\); use weitiao.data transforms \(model.preprocess\(\)\) or "
     r"x.transpose\(0, 3, 1, 2\)$"),
    (np.zeros((2, 32, 32, 3), np.uint8), ValueError,
     r"x.transpose\(0, 3, 1, 2\); and uint8 pixels need converting to float32 with the "
     r"model's normalisation \(model.preprocess\(\) does both\)$"),
    (np.zeros((2, 3, 32, 32), np.uint8), TypeError,
     r"^resnet18: got uint8 images; the model takes float32 values normalised as in "
     r"pretraining \(\[0, 1\] RGB minus mean \(0.485, 0.456, 0.406\), over std "
     r"\(0.229, 0.224, 0.225\)\): run images through model.preprocess\(\) \(weitiao.data "
     r"transforms\), or compute \(\(x / 255 - mean\) / std\).astype\(np.float32\)"),
    (np.zeros((2, 3, 32, 32), np.float64), TypeError,
     r"^resnet18: got float64 images; expected float32: x.astype\(np.float32\)$"),
    (np.zeros((3, 32, 32), np.float32), ValueError,
     r"^resnet18: got one image \(3, 32, 32\); expected \(N, 3, H, W\), a batch: x\[None\]"),
    (np.zeros((32, 32, 3), np.uint8), ValueError,
     r"got one image \(32, 32, 3\); .*x.transpose\(2, 0, 1\)\[None\] makes a batch of one; "
     r"and uint8 pixels need converting"),
    (np.zeros((2, 1, 32, 32), np.float32), ValueError,
     r"^resnet18: got \(2, 1, 32, 32\); expected \(N, 3, H, W\) images$"),
    ([[0.0, 1.0]], TypeError, r"^resnet18: got a list; expected \(N, 3, H, W\) float32"),
])
def test_wrong_images_say_how_to_make_right_ones(x, kind, pattern):
    model = resnet18(num_classes=3, rng=0)
    for mode in (True, False):
        model.train(mode)
        with pytest.raises(kind, match=pattern):
            model(x)
    with pytest.raises(kind, match=pattern):
        model.forward_features(x)


def test_the_check_names_the_architecture_and_its_normalisation():
    lite = efficientnet_lite0(num_classes=2, rng=0)
    with pytest.raises(TypeError, match=r"^efficientnet_lite0: got uint8 images; .*mean "
                                        r"\(0.5, 0.5, 0.5\), over std "
                                        r"\(0.5, 0.5, 0.5\)\)"):
        lite(np.zeros((1, 3, 32, 32), np.uint8))


def test_predict_given_channels_last_floats_says_so():
    tuner = FineTuner(small_resnet18(), classes=["a", "b"])
    with pytest.raises(ValueError, match=r"got \(2, 32, 32, 3\); expected \(N, 3, H, W\): "
                                         r"the channels come last"):
        tuner.predict(np.zeros((2, 32, 32, 3), np.float32))


# --------------------------------------------------------------------------- empty batches

def test_an_empty_batch_says_so(model):
    empty = np.zeros((0, 3, 32, 32), np.float32)
    model.train()
    with pytest.raises(ValueError, match=r"^resnet18: an empty batch \(0 images\) in training "
                                         r"mode: nothing to train on.*skip empty batches"):
        model(empty)
    model.eval()
    assert model(empty).shape == (0, 3)  # evaluation of nothing is an empty result
    with pytest.raises(ValueError, match=r"^CrossEntropyLoss: an empty batch \(0 rows of "
                                         r"logits\): the mean loss over no samples is "
                                         r"undefined"):
        nn.CrossEntropyLoss()(np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    check_finite_input(empty)  # no NumPy "cannot reshape array of size 0"
    check_finite_input(np.zeros((0, 512), np.float32))


def test_an_empty_batch_of_cached_features_says_so():
    tuner = FineTuner(small_resnet18(), classes=["a", "b"], freeze="backbone")
    m = tuner.model
    with pytest.raises(ValueError, match="CrossEntropyLoss: an empty batch"):
        tuner._train_step(np.zeros((0, 512), np.float32), np.zeros(0, np.int64),
                          m.forward_head, m.backward_head, tuner._guard(m.forward_head))


# --------------------------------------------------------------------------- NaN input

def test_nan_images_are_bad_input_in_predict_and_evaluate():
    tuner = FineTuner(small_resnet18(), classes=["a", "b"])
    x = images(5)
    x[3, 0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^predict: non-finite input: images \[3\] hold NaN "
                                         r"or Inf after preprocessing, so their class "
                                         r"probabilities would be NaN; check those files"):
        tuner.predict(x, batch_size=2)
    with pytest.raises(ValueError, match=r"^evaluate: non-finite input: images \[3\]"):
        tuner.evaluate((x, np.array([0, 1, 0, 1, 0])), batch_size=2, num_workers=0)
    tuner.model.fc.weight.data[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"non-finite outputs on finite images "
                                                 r"0\.\.1: its weights hold NaN or Inf"):
        tuner.predict(images(2))


def test_nan_images_in_fit_are_not_blamed_on_the_learning_rate():
    x = images(4)
    x[2, 1, 0, 0] = np.nan
    tuner = FineTuner(small_resnet18(), classes=["a", "b"])
    with pytest.raises(ValueError, match=r"fit: non-finite input: images \[2\] of this batch "
                                         r"\(of 4\) hold NaN or Inf") as info:
        tuner.fit((x, np.array([0, 1, 0, 1])), epochs=1, shuffle=False, num_workers=0,
                  verbose=False)
    assert "learning rate" not in str(info.value)


# --------------------------------------------------------------------------- classes

def test_one_class_is_refused():
    with pytest.raises(ValueError, match=r"^FineTuner: classes must name at least two classes"
                                         r" \(a classifier with one class always predicts "
                                         r"it, at loss 0\), got \['only'\]"):
        FineTuner(small_resnet18(), classes=["only"])
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2"):
        FineTuner(small_resnet18(), num_classes=1)


@pytest.fixture(scope="module")
def five_class_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ft") / "five.safetensors"
    FineTuner(resnet18(rng=0), classes=list("abcde")).save(path)
    return path


def test_a_class_count_mismatch_says_how_to_load_the_file(five_class_file):
    state = load_state_dict(five_class_file)
    with pytest.raises(ValueError, match=r"shape mismatch for fc.weight: expected \(3, 512\), "
                                         r"got \(5, 512\).*\. The checkpoint's output layer "
                                         r"\(fc\) has 5 classes and this model's 3: build the "
                                         r"model with num_classes=5 \(e.g. resnet18\("
                                         r"num_classes=5, weights=path\)\); a file written by "
                                         r"FineTuner.save loads with FineTuner.load\(path\)"):
        resnet18(num_classes=3, rng=0).load_state_dict(state)
    with pytest.raises(ValueError, match=r"^resnet18: .*five.safetensors does not fit this "
                                         r"architecture: .*has 5 classes and this model's "
                                         r"1000: build the model with num_classes=5"):
        resnet18(weights=five_class_file)


def test_num_classes_of_the_file_loads_it_whole(five_class_file):
    """The fix the message gives works: the fine-tuned head is kept, not replaced."""
    direct = resnet18(num_classes=5, weights=five_class_file)
    tuner = FineTuner.load(five_class_file)
    for k, v in tuner.model.state_dict().items():
        np.testing.assert_array_equal(direct.state_dict()[k], v, err_msg=k)
    # a fine-tuned file becomes a source for other classes through FineTuner
    again = FineTuner(direct, classes=["x", "y"])
    assert again.num_classes == 2
    np.testing.assert_array_equal(again.model.conv1.weight.data, direct.conv1.weight.data)


def test_another_architectures_file_is_named_briefly(five_class_file):
    with pytest.raises(ValueError) as info:
        efficientnet_lite0(weights=five_class_file)
    text = str(info.value)
    assert "... (284 more)" in text and "... (110 more)" in text
    assert text.endswith("none of the checkpoint's names is one of this model's: it holds "
                         "another architecture (or its names carry a prefix to strip)")
    assert len(text) < 2000
