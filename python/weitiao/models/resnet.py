"""ResNet-18/34/50 with torchvision's module structure and parameter names, so its
checkpoints (resnet18-f37072fd.pth, ...) load by name (He et al., 2016; ResNet v1.5 puts
the bottleneck's stride on the 3x3 convolution, as torchvision does)."""
from __future__ import annotations

import numpy as np

from .. import _C
from ..nn import init
from ..nn.activation import ReLU
from ..nn.conv import Conv2d
from ..nn.linear import Flatten, Linear
from ..nn.module import (Module, Sequential, backward_chain, check_planned, forward_chain,
                         mark_if_called_directly, plan_chain)
from ..nn.norm import BatchNorm2d
from ..nn.pooling import AdaptiveAvgPool2d, MaxPool2d
from .base import Classifier
from .config import ModelConfig
from .weights import load_weights


class _Residual(Module):
    """out = relu(main(x) + shortcut(x)), the main path a chain of child names."""

    main: tuple[str, ...] = ()

    def _main(self) -> list[Module]:
        return [self._modules[n] for n in self.main]

    def plan_backward(self, input_needs_grad: bool) -> bool:
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        self._main_needs = plan_chain(self._main(), input_needs_grad)
        self._skip_needs = self.downsample.plan_backward(input_needs_grad) \
            if self.downsample is not None else input_needs_grad
        out_needs = self._main_needs or self._skip_needs
        self.relu.plan_backward(out_needs)
        object.__setattr__(self, "keeps_activations", self.training and out_needs)
        return out_needs

    def forward(self, x: np.ndarray) -> np.ndarray:
        mark_if_called_directly(self)
        out = forward_chain(self._main(), x)
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(_C.add(out, identity))

    def backward(self, grad_out: np.ndarray):
        check_planned(self)
        g = self.relu.backward(grad_out)
        grad_main = backward_chain(self._main(), g) if self._main_needs else None
        if self.downsample is not None:
            grad_skip = self.downsample.backward(g) if self._skip_needs else None
        else:
            grad_skip = g if self.input_needs_grad else None
        if not self.input_needs_grad:
            return None
        if grad_main is None:
            return grad_skip
        return grad_main if grad_skip is None else _C.add(grad_main, grad_skip)


def _downsample(inplanes: int, planes: int, stride: int, rng) -> Sequential | None:
    if stride == 1 and inplanes == planes:
        return None
    return Sequential(Conv2d(inplanes, planes, 1, stride=stride, bias=False, rng=rng),
                      BatchNorm2d(planes))


class BasicBlock(_Residual):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1
    main = ("conv1", "bn1", "relu1", "conv2", "bn2")

    def __init__(self, inplanes: int, planes: int, stride: int = 1, rng=None):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(planes)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = _downsample(inplanes, planes, stride, rng)
        self.relu = ReLU()


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4 (ResNet-50)."""

    expansion = 4
    main = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3")

    def __init__(self, inplanes: int, planes: int, stride: int = 1, rng=None):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(planes)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(planes)
        self.relu2 = ReLU()
        self.conv3 = Conv2d(planes, planes * 4, 1, bias=False, rng=rng)
        self.bn3 = BatchNorm2d(planes * 4)
        self.downsample = _downsample(inplanes, planes * 4, stride, rng)
        self.relu = ReLU()


class ResNet(Classifier):
    """torchvision's ResNet: conv1/bn1/relu/maxpool stem, layer1-4, avgpool, fc.

    Initialisation as torchvision: Kaiming-normal (fan_out, relu) convolutions, BatchNorm
    weight 1 and bias 0, PyTorch's default for fc.
    """

    chain = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
             "avgpool", "flatten", "fc")
    head_name = "fc"
    stages = (("stem", ("conv1", "bn1")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
              ("layer3", ("layer3",)), ("layer4", ("layer4",)))

    def __init__(self, block, layers: list[int], num_classes: int = 1000, rng=None,
                 config: ModelConfig | None = None):
        super().__init__()
        gen = init.as_generator(rng)
        self.config = config or ModelConfig.imagenet()
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False, rng=gen)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            mods = []
            for b in range(blocks):
                mods.append(block(inplanes, planes, stride if b == 0 else 1, rng=gen))
                inplanes = planes * block.expansion
            setattr(self, f"layer{i + 1}", Sequential(*mods))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(512 * block.expansion, num_classes, rng=gen)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", rng=gen)


# File names carry the first hex digits of the file's SHA-256, as torchvision's do.
RESNET_WEIGHTS = {
    "resnet18": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet18-f37072fd.pth"},
    "resnet34": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet34-b627a593.pth"},
    "resnet50": {"IMAGENET1K_V1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 "IMAGENET1K_V2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"},
}


def _resnet(arch: str, block, layers, num_classes: int, weights, rng, progress: bool) -> ResNet:
    model = ResNet(block, layers, num_classes if weights is None else 1000, rng=rng)
    model.arch = arch
    if weights is not None:
        load_weights(model, weights, RESNET_WEIGHTS[arch], arch, num_classes, rng=rng,
                     progress=progress)
    return model


def resnet18(num_classes: int = 1000, weights=None, rng=None, progress: bool = True) -> ResNet:
    """ResNet-18. ``weights``: None (random init), a checkpoint path, or a torchvision name
    ("IMAGENET1K_V1" or "DEFAULT") found in the torch hub cache or downloaded.

    >>> model = resnet18(num_classes=10, rng=0)
    """
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, weights, rng, progress)


def resnet34(num_classes: int = 1000, weights=None, rng=None, progress: bool = True) -> ResNet:
    """ResNet-34; ``weights`` as :func:`resnet18`."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, weights, rng, progress)


def resnet50(num_classes: int = 1000, weights=None, rng=None, progress: bool = True) -> ResNet:
    """ResNet-50 (v1.5); ``weights`` as :func:`resnet18`, also "IMAGENET1K_V2"."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, weights, rng, progress)
