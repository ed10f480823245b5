"""Pretrained-model families with torchvision-compatible names and their preprocessing."""
from .base import CheckpointMismatch, Classifier
from .config import ModelConfig, imagenet_classes
from .efficientnet_lite import (EfficientNetLite, efficientnet_lite0, efficientnet_lite1,
                                efficientnet_lite2)
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet34, resnet50
from .small_resnet import SmallResNet, resnet_small

ARCHITECTURES = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "efficientnet_lite0": efficientnet_lite0,
    "efficientnet_lite1": efficientnet_lite1,
    "efficientnet_lite2": efficientnet_lite2,
    "mobilenet_v2": mobilenet_v2,
    "resnet_small": resnet_small,
}


def create_model(arch: str, num_classes: int | None = None, weights=None, rng=None,
                 **kwargs):
    """Build a model by architecture name, e.g. ``create_model("resnet18", 10)``.
    ``num_classes`` None keeps the architecture's default (1000 for the ImageNet models,
    the weight file's classes for resnet_small).

    >>> create_model("resnet18", num_classes=3, rng=0).num_classes
    3
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return ARCHITECTURES[arch](weights=weights, rng=rng, **kwargs)


__all__ = ["ARCHITECTURES", "CheckpointMismatch", "Classifier", "EfficientNetLite",
           "MobileNetV2", "ModelConfig", "ResNet", "SmallResNet", "create_model",
           "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "imagenet_classes",
           "mobilenet_v2", "resnet18", "resnet34", "resnet50", "resnet_small"]
