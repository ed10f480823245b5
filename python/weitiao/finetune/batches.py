"""From what users pass to fit/evaluate/predict to batches the model takes: datasets get the
model's own preprocessing, arrays become datasets, and frozen-backbone features are cached."""
from __future__ import annotations

import math
import os

import numpy as np

from ..data import ArrayDataset, DataLoader


def as_dataset(data, classes: list[str], what: str):
    """A dataset from a dataset or an (images, labels) pair, checked against the tuner's
    classes."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, tuple) and len(data) == 2:
        data = ArrayDataset(data[0], data[1], classes=classes)
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"{what}: expected a dataset (ImageFolder, ArrayDataset, ...) or an "
                        f"(images, labels) pair, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{what}: the dataset is empty")
    own = list(getattr(data, "classes", []) or [])
    if own and len(own) != len(classes):
        raise ValueError(f"{what}: the dataset has {len(own)} classes {own}, the model "
                         f"{len(classes)} {classes}")
    targets = getattr(data, "targets", None)
    if targets is not None and len(targets):
        top = int(np.max(targets))
        if top >= len(classes) or int(np.min(targets)) < 0:
            raise ValueError(f"{what}: label {top} is outside [0, {len(classes)}) for "
                             f"{len(classes)} classes")
    return data


def _root(dataset):
    while hasattr(dataset, "dataset") and hasattr(dataset, "indices"):
        dataset = dataset.dataset
    return dataset


def _model_ready(dataset) -> bool:
    """Float (N, C, H, W) arrays are taken as already preprocessed model inputs."""
    root = _root(dataset)
    return isinstance(root, ArrayDataset) and root.images.dtype == np.float32


def loader(dataset, pipeline, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
           num_workers: int, sample_weights=None) -> DataLoader:
    """A DataLoader that applies ``pipeline`` (the tuner's train or eval preprocessing)
    unless the dataset has a transform of its own or holds preprocessed float arrays."""
    transform = None
    if getattr(_root(dataset), "transform", None) is None and not _model_ready(dataset):
        transform = pipeline
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      seed=seed, num_workers=num_workers, transform=transform,
                      sample_weights=sample_weights)


def targets_of(dataset, what: str) -> np.ndarray:
    """Every sample's label without decoding an image, or a ValueError naming the need."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError(f"{what} needs every sample's label up front: give a dataset with "
                         f"`targets` (ImageFolder, ArrayDataset, Subset, ELPV, ...)")
    return np.asarray(targets, dtype=np.int64)


def cached_steps(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def compute_features(model, train_loader: DataLoader, augment_pass: int,
                     verbose: bool) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features (N, D) and labels of every sample in dataset order, with the
    augmentations the training loader would apply in epoch ``augment_pass``."""
    from tqdm.auto import tqdm

    ordered = DataLoader(train_loader.dataset, batch_size=train_loader.batch_size,
                         shuffle=False, seed=train_loader.seed,
                         num_workers=train_loader.num_workers,
                         transform=train_loader.transform)
    ordered.set_epoch(augment_pass)
    feats, labels = [], []
    for x, y in tqdm(ordered, desc=f"caching features (pass {augment_pass + 1})",
                     unit="batch", leave=False, disable=not verbose):
        feats.append(model.forward_features(x))
        labels.append(y)
    features, labels = np.concatenate(feats), np.concatenate(labels)
    missing = len(train_loader.dataset) - len(labels)
    if missing:
        raise ValueError(f"feature caching needs every sample: {missing} were skipped as "
                         f"unreadable; fix or remove those files, or pass "
                         f"cache_features=False")
    return features, labels


def array_batches(features: np.ndarray, labels: np.ndarray, order: np.ndarray,
                  batch_size: int, drop_last: bool):
    """(features, labels) batches in ``order``."""
    stop = cached_steps(len(order), batch_size, drop_last) * batch_size
    for s in range(0, min(stop, len(order)), batch_size):
        idx = order[s:s + batch_size]
        yield np.ascontiguousarray(features[idx]), labels[idx]


def prepare_images(images, pipeline) -> np.ndarray:
    """A float32 (N, 3, H, W) batch from paths, PIL images, HWC uint8 arrays (each through
    the eval ``pipeline``) or preprocessed float32 (3, H, W) / (N, 3, H, W) arrays."""
    from PIL import Image

    if isinstance(images, np.ndarray) and images.dtype == np.float32 and images.ndim in (3, 4):
        return np.ascontiguousarray(images[None] if images.ndim == 3 else images)
    single = isinstance(images, (str, os.PathLike, Image.Image, np.ndarray))
    items = [images] if single else list(images)
    if not items:
        raise ValueError("predict: no images given")
    batch = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray) and item.dtype == np.float32 and item.ndim == 3:
            batch.append(item)
            continue
        if isinstance(item, (str, os.PathLike)):
            try:
                with Image.open(item) as img:
                    item = img.convert("RGB")
            except (OSError, ValueError) as e:
                raise ValueError(f"predict: cannot read image {item}: {e}") from None
        elif isinstance(item, np.ndarray) and item.dtype != np.uint8:
            raise TypeError(f"predict: image {i}: expected a uint8 HWC array or a float32 "
                            f"(3, H, W) preprocessed array, got {item.dtype} {item.shape}")
        elif not isinstance(item, (Image.Image, np.ndarray)):
            raise TypeError(f"predict: image {i}: expected a path, a PIL image or an array, "
                            f"got {type(item).__name__}")
        batch.append(pipeline(item))
    shapes = {b.shape for b in batch}
    if len(shapes) > 1:
        raise ValueError(f"predict: preprocessed images differ in shape: {sorted(shapes)}")
    return np.ascontiguousarray(np.stack(batch), dtype=np.float32)
