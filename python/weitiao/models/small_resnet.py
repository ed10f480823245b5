"""A small CIFAR-style ResNet for 28x28 images (He et al., 2016, section 4.2): a 3x3 stem,
three stages of BasicBlocks at widths 16/32/64 (the last two halve the resolution), global
average pooling and a linear output layer. It is the source model of the split
Fashion-MNIST experiments: small enough to pretrain on the CPU in minutes, deep enough to
have stages worth freezing.

Its parameter names follow torchvision's ResNet (``conv1.weight``, ``layer2.0.bn1.weight``,
``fc.bias``) and its blocks are :class:`weitiao.models.resnet.BasicBlock`.
Weights come from ``python -m weitiao pretrain`` (see :mod:`weitiao.pretrain`).
"""
from __future__ import annotations

import json
import os

from ..nn import init
from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.linear import Flatten, Linear
from ..nn.module import Sequential
from ..nn.norm import BatchNorm2d
from ..nn.pooling import AdaptiveAvgPool2d
from .base import CheckpointMismatch, Classifier
from .config import ModelConfig
from .resnet import BasicBlock

# Fashion-MNIST's pixel statistics over its 60000 training images, in [0, 1]: every model
# input is a grey image repeated over the three channels, so all channels share them.
FASHION_MNIST_MEAN = (0.2860, 0.2860, 0.2860)
FASHION_MNIST_STD = (0.3530, 0.3530, 0.3530)


def fashion_mnist_config(class_names=(), source: str = "Fashion-MNIST") -> ModelConfig:
    """Preprocessing for 28x28 Fashion-MNIST images: no resize (resize_size = input_size =
    28), Fashion-MNIST's mean and std on each of the 3 channels.

    >>> fashion_mnist_config(["Trouser"]).input_size
    28
    """
    return ModelConfig(input_size=28, resize_size=28, mean=FASHION_MNIST_MEAN,
                       std=FASHION_MNIST_STD, source=source,
                       class_names=tuple(str(c) for c in class_names))


class SmallResNet(Classifier):
    """conv1 (3x3, 16) / bn1 / relu, layer1 (16), layer2 (32, stride 2), layer3 (64,
    stride 2), avgpool, fc. ``layers`` gives the number of BasicBlocks per stage
    ((3, 3, 3) is the CIFAR ResNet-20). Stages for freezing: stem, layer1, layer2, layer3.

    Initialisation as :class:`weitiao.models.resnet.ResNet`: Kaiming-normal (fan_out, relu)
    convolutions, BatchNorm weight 1 and bias 0, PyTorch's default for fc.

    >>> net = SmallResNet((1, 1, 1), num_classes=5, rng=0)
    >>> net.stage_names()
    ['stem', 'layer1', 'layer2', 'layer3']
    """

    chain = ("conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "flatten", "fc")
    head_name = "fc"
    stages = (("stem", ("conv1", "bn1")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
              ("layer3", ("layer3",)))
    widths = (16, 32, 64)

    def __init__(self, layers=(1, 1, 1), num_classes: int = 10, rng=None,
                 config: ModelConfig | None = None):
        super().__init__()
        layers = tuple(int(n) for n in layers)
        if len(layers) != 3 or min(layers) < 1:
            raise ValueError(f"SmallResNet: layers must be 3 positive block counts, got "
                             f"{layers!r}")
        gen = init.as_generator(rng)
        self.config = config or fashion_mnist_config()
        self.conv1 = Conv2d(3, 16, 3, stride=1, padding=1, bias=False, rng=gen)
        self.bn1 = BatchNorm2d(16)
        self.relu = ReLU()
        inplanes = 16
        for i, (planes, blocks) in enumerate(zip(self.widths, layers)):
            stride = 1 if i == 0 else 2
            mods = []
            for b in range(blocks):
                mods.append(BasicBlock(inplanes, planes, stride if b == 0 else 1, rng=gen))
                inplanes = planes
            setattr(self, f"layer{i + 1}", Sequential(*mods))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(inplanes, num_classes, rng=gen)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", rng=gen)

    @property
    def layers(self) -> tuple[int, int, int]:
        """BasicBlocks per stage."""
        return tuple(len(getattr(self, f"layer{i}")) for i in (1, 2, 3))


def resnet_small(num_classes: int | None = None, weights=None, rng=None,
                 layers=(1, 1, 1), config: ModelConfig | None = None) -> SmallResNet:
    """The small ResNet for 28x28 images. ``weights``: None (random init, ``num_classes``
    outputs, default 10) or a .safetensors file written by ``python -m weitiao pretrain``
    (or ``FineTuner.save``), which brings the block counts, the preprocessing and the
    source class names; ``num_classes`` other than the file's then puts a new head on top.
    ``layers`` (BasicBlocks per stage) and ``config`` shape a random initialisation; a
    file brings its own.

    >>> net = resnet_small(num_classes=5, rng=0)
    >>> net.config.input_size, net.num_classes
    (28, 5)
    >>> src = resnet_small(weights="resnet_small_fmnist5.safetensors")  # doctest: +SKIP
    >>> src.config.class_names  # doctest: +SKIP
    ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat')
    """
    if weights is None:
        model = SmallResNet(layers, 10 if num_classes is None else num_classes, rng=rng,
                            config=config)
    else:
        model = _from_file(weights, rng)
        if num_classes is not None and num_classes != model.num_classes:
            model.replace_head(num_classes, rng=rng)
    model.arch = "resnet_small"
    model.arch_kwargs = {"layers": list(model.layers)}
    return model


def _from_file(path, rng) -> SmallResNet:
    from ..io import load_safetensors

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resnet_small: weights file {path} does not exist; make one "
                                f"with `python -m weitiao pretrain --out {path}`")
    state, meta = load_safetensors(path)
    if "weitiao" not in meta:
        raise ValueError(f"resnet_small: {path} has no weitiao metadata; expected a file "
                         f"written by `python -m weitiao pretrain` or FineTuner.save")
    info = json.loads(meta["weitiao"])
    if info.get("arch") != "resnet_small":
        raise ValueError(f"resnet_small: {path} holds a {info.get('arch')!r} model")
    layers = info.get("arch_kwargs", {}).get("layers", (1, 1, 1))
    config = ModelConfig.from_dict(info["config"])
    model = SmallResNet(layers, len(info["classes"]), rng=rng, config=config)
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise CheckpointMismatch(f"resnet_small: {path} does not fit this architecture: "
                                 f"{e}") from None
    return model
