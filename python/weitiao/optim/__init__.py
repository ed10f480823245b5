"""Optimizers and learning-rate schedules."""
from .lr_scheduler import CosineAnnealingLR, OneCycleLR, StepLR, WarmupCosineLR
from .sgd import SGD

__all__ = ["SGD", "StepLR", "CosineAnnealingLR", "OneCycleLR", "WarmupCosineLR"]
