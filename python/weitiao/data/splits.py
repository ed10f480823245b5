"""Splitting a dataset into Subsets: at random (torch's ``random_split``) or per class.

>>> import numpy as np
>>> from weitiao.data.datasets import ArrayDataset
>>> ds = ArrayDataset(np.zeros((10, 2, 2), np.uint8), [0] * 6 + [1] * 4)
>>> train, val = stratified_split(ds, [0.5, 0.5], seed=0)
>>> sorted(train.targets), sorted(val.targets)
([0, 0, 0, 1, 1], [0, 0, 0, 1, 1])
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..nn.init import as_generator
from .datasets import Subset


def _check_fractions(fractions: Sequence[float], who: str) -> list[float]:
    fr = [float(f) for f in fractions]
    if not fr or any(not 0.0 <= f <= 1.0 for f in fr) or not math.isclose(sum(fr), 1.0,
                                                                             abs_tol=1e-9):
        raise ValueError(f"{who}: fractions must lie in [0, 1] and sum to 1, got {fr}")
    return fr


def _apportion(n: int, fractions: list[float]) -> list[int]:
    """Split n items in proportion to ``fractions``: floors first, then one more to the
    largest remainders (ties to the earlier part), so the counts sum to n."""
    quotas = [n * f for f in fractions]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(fractions)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in order[:n - sum(counts)]:
        counts[k] += 1
    return counts


def random_split(dataset, lengths: Sequence[int] | Sequence[float],
                 seed: int | np.random.Generator = 0) -> list[Subset]:
    """Disjoint random Subsets covering ``dataset``.

    ``lengths``: ints summing to ``len(dataset)``, or floats (fractions) summing to 1,
    turned into counts as torch does: ``floor(n * f)`` each, then the leftover items one
    by one to the first parts. The order comes from ``numpy.random.default_rng(seed)``.

    >>> from weitiao.data.datasets import ArrayDataset
    >>> ds = ArrayDataset(np.zeros((10, 2, 2), np.uint8), [0] * 10)
    >>> [len(s) for s in random_split(ds, [0.75, 0.25], seed=1)]
    [8, 2]
    """
    n = len(dataset)
    if not len(lengths):
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in lengths):
        counts = [int(x) for x in lengths]
        if any(c < 0 for c in counts) or sum(counts) != n:
            raise ValueError(f"random_split: lengths {counts} must be non-negative and sum "
                             f"to the dataset's {n} samples")
    else:
        fr = _check_fractions(lengths, "random_split")
        counts = [math.floor(n * f) for f in fr]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
    perm = as_generator(seed).permutation(n)
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, perm[start:start + c].tolist()))
        start += c
    return out


def stratified_split(dataset, fractions: Sequence[float],
                     seed: int | np.random.Generator = 0) -> list[Subset]:
    """Disjoint Subsets with each class split in proportion to ``fractions`` (sum 1).

    Reads ``dataset.targets`` (no image is decoded). Classes are taken in increasing label
    order, each shuffled with one generator from ``seed``; a class of n_c samples gives
    part k ``floor(n_c * f_k)`` samples plus one for the largest remainders, so every part
    holds each class in proportion up to one sample. Indices within a part are sorted.

    >>> from weitiao.data.datasets import ArrayDataset
    >>> ds = ArrayDataset(np.zeros((8, 2, 2), np.uint8), [0, 0, 0, 0, 1, 1, 1, 1])
    >>> [sorted(s.targets) for s in stratified_split(ds, [0.75, 0.25])]
    [[0, 0, 0, 1, 1, 1], [0, 1]]
    """
    fr = _check_fractions(fractions, "stratified_split")
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise TypeError(f"stratified_split: {type(dataset).__name__} has no `targets`; "
                        f"it needs every sample's label without loading the images")
    targets = np.asarray(targets)
    if targets.shape != (len(dataset),):
        raise ValueError(f"stratified_split: targets has shape {targets.shape}, expected "
                         f"({len(dataset)},)")
    rng = as_generator(seed)
    parts: list[list[int]] = [[] for _ in fr]
    for c in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == c))
        start = 0
        for k, count in enumerate(_apportion(idx.size, fr)):
            parts[k].extend(idx[start:start + count].tolist())
            start += count
    return [Subset(dataset, sorted(p)) for p in parts]
