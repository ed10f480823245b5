"""Layers with forward()/backward() over the C kernels, PyTorch's names and layouts."""
from . import init
from .activation import ReLU, ReLU6
from .conv import Conv2d
from .linear import Dropout, Flatten, Identity, Linear
from .loss import CrossEntropyLoss
from .module import Module, Parameter, Sequential
from .norm import BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout",
    "Flatten", "Identity", "Linear", "MaxPool2d", "Module", "Parameter", "ReLU", "ReLU6",
    "Sequential", "init",
]
