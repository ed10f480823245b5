"""Batches of samples for training: shuffled per epoch, decoded and augmented in background
threads, and reproducible bit for bit whatever the number of threads.

Randomness: the sample order of epoch e comes from ``SeedSequence(seed, spawn_key=(0, e))``,
and sample i of epoch e is transformed with its own generator from
``SeedSequence(seed, spawn_key=(1, e, i))``. No generator is shared between samples, so
which thread handles a sample, and when, cannot change its pixels.

>>> import numpy as np
>>> from weitiao.data.datasets import ArrayDataset
>>> ds = ArrayDataset(np.zeros((10, 8, 8), np.uint8), [0, 1] * 5)
>>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
>>> [(x.shape, y.dtype) for x, y in loader][-1]
((2, 1, 8, 8), dtype('int64'))
>>> len(loader)
3
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image

from .datasets import _as_transform, get_item
from .functional import to_array
from .image_files import SkippedSample


def _nonneg_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"DataLoader: {what} must be a non-negative int, got {v!r}")
    return int(v)


def _as_chw(img, index: int) -> np.ndarray:
    """float32 (C, H, W): PIL images and uint8 arrays through ToArray's conversion."""
    if isinstance(img, Image.Image) or (isinstance(img, np.ndarray) and img.dtype == np.uint8):
        return to_array(img)
    if isinstance(img, np.ndarray) and np.issubdtype(img.dtype, np.floating):
        if img.ndim == 2:
            img = img[None]
        if img.ndim == 3:
            return np.ascontiguousarray(img, dtype=np.float32)
    what = (f"an array of dtype {img.dtype} and shape {img.shape}"
            if isinstance(img, np.ndarray) else type(img).__name__)
    raise TypeError(f"DataLoader: sample {index} is {what}; expected a PIL image, a uint8 "
                    f"(H, W[, C]) array or a float (C, H, W) array")


def _as_label(label, index: int) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"DataLoader: the label of sample {index} is {label!r}; expected an "
                        f"int class index")
    return int(label)


def _sample_weights(weights, n: int) -> np.ndarray | None:
    """Normalised sampling probabilities, or None; the message names what is wrong."""
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"DataLoader: sample_weights: expected one weight per sample, shape "
                         f"({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("DataLoader: sample_weights must be finite, non-negative and not all "
                         "zero")
    return w / w.sum()


def class_balanced_weights(targets) -> np.ndarray:
    """Per-sample weights 1 / (samples of its class): every class is drawn equally often.

    >>> class_balanced_weights([0, 0, 0, 1]).tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 1.0]
    """
    t = np.asarray(targets, dtype=np.int64)
    if t.ndim != 1 or t.size == 0 or t.min() < 0:
        raise ValueError(f"class_balanced_weights: expected a non-empty 1-D array of class "
                         f"indices, got shape {t.shape}")
    return 1.0 / np.bincount(t)[t]


class DataLoader:
    """Iterate over ``dataset`` in batches of (images float32 (B, C, H, W) C-contiguous,
    labels int64 (B,)).

    - ``shuffle``: a new order each epoch, drawn from (``seed``, epoch). The epoch is
      ``loader.epoch``: each ``iter(loader)`` uses it and then adds 1, and
      ``set_epoch(e)`` sets it (PyTorch's DistributedSampler habit works too).
    - ``transform``: applied after the dataset's own transform, with the same per-sample
      generator; handy to give a train and a validation Subset different pipelines.
      Samples still PIL images or uint8 arrays at the end become float32 in [0, 1] (ToArray).
    - ``num_workers`` threads decode and transform samples (Pillow releases the GIL) while
      at most ``prefetch_batches`` further batches wait; 0 loads in the calling thread.
      Results are bit-identical for any ``num_workers``.
    - ``sample_weights`` (one non-negative number per sample): each epoch draws
      ``len(dataset)`` indices with replacement, index i with probability proportional to
      its weight (PyTorch's WeightedRandomSampler), from (``seed``, epoch);
      ``class_balanced_weights(targets)`` gives every class the same share.
    - ``drop_last`` drops a final short batch. Samples of a dataset with
      ``on_error="skip"`` whose file fails to decode are left out of their batch.

    Stopping early (``break``, an exception, KeyboardInterrupt) cancels queued work and
    joins the threads before control returns.

    >>> from weitiao.data.datasets import ArrayDataset
    >>> ds = ArrayDataset(np.zeros((5, 3, 4, 4), np.float32), [0, 1, 2, 0, 1])
    >>> x, y = next(iter(DataLoader(ds, batch_size=2, num_workers=2)))
    >>> x.shape, y.tolist()
    ((2, 3, 4, 4), [0, 1])
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = 0, num_workers: int = 0,
                 transform: Callable | None = None, prefetch_batches: int = 2,
                 sample_weights=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got "
                             f"{batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = (int(np.random.SeedSequence().entropy) if seed is None
                     else _nonneg_int(seed, "seed"))
        self.num_workers = _nonneg_int(num_workers, "num_workers")
        self.prefetch_batches = max(1, _nonneg_int(prefetch_batches, "prefetch_batches"))
        self.transform = _as_transform(transform)
        self.epoch = 0
        self.sample_weights = _sample_weights(sample_weights, len(dataset))

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order and augmentations)."""
        self.epoch = _nonneg_int(epoch, "epoch")

    def order(self, epoch: int) -> np.ndarray:
        """The dataset indices in the order epoch ``epoch`` visits them."""
        n = len(self.dataset)
        if self.sample_weights is not None:
            ss = np.random.SeedSequence(self.seed, spawn_key=(2, epoch))
            return np.random.default_rng(ss).choice(n, size=n, p=self.sample_weights)
        if not self.shuffle:
            return np.arange(n)
        ss = np.random.SeedSequence(self.seed, spawn_key=(0, epoch))
        return np.random.default_rng(ss).permutation(n)

    def sample_rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator that transforms dataset sample ``index`` in epoch ``epoch``."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(1, epoch, int(index)))
        return np.random.default_rng(ss)

    def load(self, index: int, epoch: int) -> tuple[np.ndarray, int] | None:
        """Sample ``index`` as the loader makes it in ``epoch``: (float32 (C, H, W), label),
        or None when the dataset skips it."""
        rng = self.sample_rng(epoch, index)
        try:
            img, label = get_item(self.dataset, index, rng)
        except SkippedSample:
            return None
        if self.transform is not None:
            img = self.transform(img, rng)
        return _as_chw(img, index), _as_label(label, index)

    def _batches(self, epoch: int) -> list[np.ndarray]:
        order = self.order(epoch)
        stop = len(self) * self.batch_size
        return [order[s:s + self.batch_size] for s in range(0, min(stop, order.size),
                                                               self.batch_size)]

    @staticmethod
    def _collate(samples: list, indices) -> tuple[np.ndarray, np.ndarray] | None:
        kept = [(s, i) for s, i in zip(samples, indices) if s is not None]
        if not kept:
            return None
        shape = kept[0][0][0].shape
        for (img, _), i in kept:
            if img.shape != shape:
                raise ValueError(f"DataLoader: sample {i} has shape {img.shape} but sample "
                                 f"{kept[0][1]} has {shape}; give the transform a Resize/"
                                 f"CenterCrop or RandomResizedCrop so all images match")
        images = np.empty((len(kept),) + shape, dtype=np.float32)
        for k, ((img, _), _) in enumerate(kept):
            images[k] = img
        labels = np.fromiter((lab for (_, lab), _ in kept), dtype=np.int64, count=len(kept))
        return images, labels

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        self.epoch += 1
        batches = self._batches(epoch)
        if self.num_workers == 0:
            return self._serial(batches, epoch)
        return self._threaded(batches, epoch)

    def _serial(self, batches, epoch):
        for idx in batches:
            batch = self._collate([self.load(int(i), epoch) for i in idx], idx)
            if batch is not None:
                yield batch

    def _threaded(self, batches, epoch):
        pool = ThreadPoolExecutor(max_workers=self.num_workers,
                                  thread_name_prefix="weitiao-data")
        pending: deque[tuple[np.ndarray, list[Future]]] = deque()
        todo = iter(batches)

        def submit_next() -> None:
            idx = next(todo, None)
            if idx is not None:
                pending.append((idx, [pool.submit(self.load, int(i), epoch) for i in idx]))

        try:
            for _ in range(self.prefetch_batches):
                submit_next()
            while pending:
                idx, futures = pending.popleft()
                submit_next()
                batch = self._collate([f.result() for f in futures], idx)
                if batch is not None:
                    yield batch
        finally:
            for _, futures in pending:
                for f in futures:
                    f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__}({len(self.dataset)}), "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, "
                f"num_workers={self.num_workers})")
