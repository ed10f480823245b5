"""Pretrained-model families with torchvision-compatible names and their preprocessing."""
from .base import Classifier
from .config import ModelConfig, imagenet_classes
from .efficientnet_lite import EfficientNetLite, efficientnet_lite0
from .resnet import ResNet, resnet18, resnet34, resnet50

__all__ = ["Classifier", "EfficientNetLite", "ModelConfig", "ResNet", "efficientnet_lite0",
           "imagenet_classes", "resnet18", "resnet34", "resnet50"]
