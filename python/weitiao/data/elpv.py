"""The ELPV dataset (Buerhop-Lutz et al. 2018; Deitsch et al. 2019): 2,624 electroluminescence
images of solar cells, 300x300 8-bit grayscale PNGs, each with a defect probability in
{0, 1/3, 2/3, 1} and a module type ("mono" or "poly"), from the PyPI package
``elpv-dataset`` (its data/labels.csv lists "path probability type" per line).

>>> CLASSES  # label k means defect probability k/3
('0', '1/3', '2/3', '1')
>>> ds = ELPV()  # doctest: +SKIP
>>> len(ds), ds.classes, ds[0][0].size  # doctest: +SKIP
(2624, ['0', '1/3', '2/3', '1'], (300, 300))
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .datasets import FileDataset

CLASSES = ("0", "1/3", "2/3", "1")
INSTALL_HINT = "pip install elpv-dataset"


def elpv_data_dir() -> str:
    """The folder holding labels.csv and images/ inside the installed ``elpv-dataset``.

    >>> os.path.basename(elpv_data_dir())  # doctest: +SKIP
    'data'
    """
    try:
        import elpv_dataset
    except ImportError as e:
        raise ImportError(f"ELPV needs the elpv-dataset package: {INSTALL_HINT}") from e
    return os.path.join(os.path.dirname(os.path.abspath(elpv_dataset.__file__)), "data")


def read_labels(csv_path: str) -> tuple[list[str], np.ndarray, list[str]]:
    """(relative image paths, defect probabilities, module types) from labels.csv, whose
    lines are whitespace-separated "images/cell0001.png  1.0  mono".

    >>> csv_path = os.path.join(elpv_data_dir(), "labels.csv")  # doctest: +SKIP
    >>> paths, probs, types = read_labels(csv_path)  # doctest: +SKIP
    >>> paths[0], probs[0], types[0]  # doctest: +SKIP
    ('images/cell0001.png', np.float64(1.0), 'mono')
    """
    paths, probs, types = [], [], []
    with open(csv_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(f"{csv_path}:{lineno}: expected 'path probability type', "
                                 f"got {line.strip()!r}")
            try:
                p = float(fields[1])
            except ValueError:
                raise ValueError(f"{csv_path}:{lineno}: probability {fields[1]!r} is not a "
                                 f"number") from None
            paths.append(fields[0])
            probs.append(p)
            types.append(fields[2])
    return paths, np.asarray(probs, dtype=np.float64), types


class ELPV(FileDataset):
    """Solar-cell images with 4 defect classes: label k means defect probability k/3
    (``classes`` = ["0", "1/3", "2/3", "1"]).

    ``probabilities`` float64 (N,), ``targets`` the labels 0..3, ``types`` "mono"/"poly"
    per image. Images are decoded on demand and converted to ``channels`` ("RGB" by
    default, as ImageNet models expect; "L" keeps one channel). ``root`` may point at
    another copy with the same layout (labels.csv next to images/). Raises ImportError
    saying ``pip install elpv-dataset`` when the package is missing.

    >>> ds = ELPV(transform=ToArray())  # doctest: +SKIP
    >>> ds[0][0].shape, ds.types[0]  # doctest: +SKIP
    ((3, 300, 300), 'mono')
    """

    def __init__(self, transform: Callable | None = None, channels: str | None = "RGB",
                 root: str | os.PathLike | None = None, on_error: str = "raise"):
        self.root = os.fspath(root) if root is not None else elpv_data_dir()
        csv_path = os.path.join(self.root, "labels.csv")
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(f"ELPV: {csv_path} not found; reinstall the data with "
                                    f"{INSTALL_HINT}")
        rel, probs, types = read_labels(csv_path)
        levels = probs * 3
        labels = np.rint(levels).astype(np.int64)
        bad = np.flatnonzero((np.abs(levels - labels) > 1e-6) | (labels < 0) | (labels > 3))
        if bad.size:
            raise ValueError(f"ELPV: {rel[bad[0]]} has defect probability {probs[bad[0]]}, "
                             f"expected one of 0, 1/3, 2/3, 1")
        self.probabilities = probs
        self.types = types
        samples = [(os.path.join(self.root, p), int(t)) for p, t in zip(rel, labels)]
        super().__init__(samples, CLASSES, transform=transform, on_error=on_error,
                         channels=channels)
        if self.skipped:  # keep the per-image arrays aligned with the samples left
            kept = {p for p, _ in self.samples}
            keep = [i for i, (p, _) in enumerate(samples) if p in kept]
            self.probabilities = probs[keep]
            self.types = [types[i] for i in keep]

    def _repr_lines(self) -> list[str]:
        return [f"Root location: {self.root}"]
