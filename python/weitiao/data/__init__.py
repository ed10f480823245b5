"""Data for fine-tuning: image datasets, torchvision-style transforms with explicit random
generators, splits, and a threaded, deterministic DataLoader. Arrays out are float32
NCHW, as the models take them.

>>> from weitiao.data import DataLoader, ImageFolder, stratified_split
>>> from weitiao.models import resnet18
>>> net = resnet18(num_classes=2, rng=0)
>>> photos = ImageFolder("hotdog/train")  # doctest: +SKIP
>>> train, val = stratified_split(photos, [0.9, 0.1], seed=0)  # doctest: +SKIP
>>> train_loader = DataLoader(train, batch_size=32, shuffle=True, num_workers=4,
...                           transform=net.preprocess(train=True))  # doctest: +SKIP
>>> val_loader = DataLoader(val, batch_size=64, num_workers=4,
...                         transform=net.preprocess(train=False))  # doctest: +SKIP
>>> for x, y in train_loader:  # x float32 (32, 3, 224, 224), y int64 (32,)  # doctest: +SKIP
...     logits = net(x)
"""
from . import functional
from .datasets import ArrayDataset, Dataset, FileDataset, ImageFolder, Subset
from .elpv import ELPV
from .fashion_mnist import FashionMNIST
from .image_files import IMG_EXTENSIONS, ImageReadError, SkippedSample
from .loader import DataLoader, class_balanced_weights
from .splits import random_split, stratified_split
from .augment import (AUGMENT_PRESETS, DEFAULT_AUGMENT, Preset, eval_pipeline,
                      preset_eval_crop, train_pipeline)
from .transforms import (CenterCrop, ColorJitter, Compose, ConvertMode, Normalize,
                         RandomAffine, RandomHorizontalFlip, RandomResizedCrop, RandomRot90,
                         RandomRotation, RandomVerticalFlip, Resize, ToArray, Transform,
                         default_pipeline)

__all__ = [
    "AUGMENT_PRESETS", "ArrayDataset", "CenterCrop", "ColorJitter", "Compose", "ConvertMode",
    "DEFAULT_AUGMENT", "DataLoader", "Dataset", "ELPV", "FashionMNIST", "FileDataset",
    "IMG_EXTENSIONS", "ImageFolder", "ImageReadError", "Normalize", "Preset", "RandomAffine",
    "RandomHorizontalFlip", "RandomResizedCrop", "RandomRot90", "RandomRotation",
    "RandomVerticalFlip", "Resize", "SkippedSample", "Subset", "ToArray", "Transform",
    "class_balanced_weights", "default_pipeline", "eval_pipeline", "functional", "preset_eval_crop", "random_split",
    "stratified_split", "train_pipeline",
]
