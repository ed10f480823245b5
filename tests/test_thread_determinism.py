"""Same bits at any thread count: a notebook re-run on a machine with more cores gives the
same numbers. Every layer's forward and backward, a training step of ResNet-18 and of
EfficientNet-Lite0, and the weights after a short fit are compared bit for bit at 1, 2, 3
and 4 threads, on the Winograd and the im2col paths (docs/performance.md, "Threads")."""
import numpy as np
import pytest

import weitiao
from weitiao import _C, nn
from weitiao.data import ArrayDataset
from weitiao.finetune import FineTuner
from weitiao.models import efficientnet_lite0, resnet18

THREADS = (1, 2, 3, 4)


@pytest.fixture(autouse=True)
def restore_threads():
    before = weitiao.get_num_threads()
    yield
    weitiao.set_num_threads(before)


def at_each_thread_count(fn):
    """fn() at every thread count; fails unless every result equals the 1-thread one."""
    results = {}
    for t in THREADS:
        weitiao.set_num_threads(t)
        results[t] = [np.array(a, copy=True) for a in fn()]
    for t in THREADS[1:]:
        for i, (a, b) in enumerate(zip(results[1], results[t])):
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}: 1 vs {t} threads")


CONVS = {  # name: (C, OC, kernel, stride, padding, groups, map, batch)
    "winograd 3x3": (32, 32, 3, 1, 1, 1, 14, 5),
    "im2col 3x3 stride 2": (32, 64, 3, 2, 1, 1, 14, 5),
    "pointwise 1x1": (32, 64, 1, 1, 0, 1, 9, 7),
    "stem 7x7 stride 2": (3, 16, 7, 2, 3, 1, 32, 3),
    "depthwise 3x3": (32, 32, 3, 1, 1, 32, 14, 5),
    "im2col, one image": (32, 64, 3, 2, 1, 1, 14, 1),
}


@pytest.mark.parametrize("winograd", [True, False])
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_forward_and_backward(name, winograd):
    c, oc, k, stride, pad, groups, size, n = CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((oc, c // groups, k, k), dtype=np.float32)
    kw = dict(stride=stride, padding=pad, groups=groups)
    dy = rng.standard_normal(_C.conv2d_forward(x, w, None, **kw).shape, dtype=np.float32)

    def run():
        dw, db = np.zeros_like(w), np.zeros(oc, np.float32)
        _C.conv2d_backward_weight(dy, x, dw, db, **kw)
        return (_C.conv2d_forward(x, w, None, **kw), dw, db,
                _C.conv2d_backward_data(dy, w, x.shape, **kw))

    weitiao.set_winograd(winograd)
    try:
        at_each_thread_count(run)
    finally:
        weitiao.set_winograd(True)


def test_other_layers_forward_and_backward():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 16, 11, 11), dtype=np.float32)
    layers = [nn.BatchNorm2d(16), nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2),
              nn.AdaptiveAvgPool2d(1), nn.ReLU(), nn.ReLU6()]
    fc = nn.Linear(16 * 11 * 11, 5, rng=0)
    loss = nn.CrossEntropyLoss()
    labels = np.arange(6) % 5

    def run():
        out = []
        for layer in layers:
            layer.train()
            y = layer(x, input_grad=True)
            out += [y, layer.backward(np.ones_like(y))]
        bn = layers[0]
        out += [bn.running_mean, bn.running_var, bn.weight.grad, bn.bias.grad]
        fc.zero_grad()
        logits = fc(x.reshape(6, -1), input_grad=True)
        out += [logits, np.float32(loss(logits, labels))]
        out += [fc.backward(loss.backward()), fc.weight.grad, fc.bias.grad]
        for layer in layers:
            layer.zero_grad()
        bn.running_mean[...], bn.running_var[...] = 0.0, 1.0
        return out

    at_each_thread_count(run)


@pytest.mark.parametrize("factory", [resnet18, efficientnet_lite0])
def test_a_training_step_and_a_short_fit(factory):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 48, 48), dtype=np.float32)
    y = np.arange(8) % 3
    source = factory(rng=3)
    source.config = source.config.resized(48)

    def step():
        model = factory(rng=3, num_classes=3).train()
        logits = model(x)
        loss = nn.CrossEntropyLoss()
        loss(logits, y)
        model.zero_grad()
        model.backward(loss.backward())
        return [logits, *[p.grad for p in model.parameters()]]

    def fit():
        tuner = FineTuner(source, num_classes=3, seed=0, augment="none")
        tuner.fit(ArrayDataset(x, y), 2, batch_size=4, num_workers=0, verbose=False)
        return list(tuner.model.state_dict().values())

    at_each_thread_count(step)
    at_each_thread_count(fit)
