"""Datasets: indexable collections of (image, label) pairs.

``dataset[i]`` or ``dataset.__getitem__(i, rng)`` returns the i-th image, passed through
the dataset's transform with generator ``rng``, and its integer label. Files are decoded
when asked for, so a dataset of thousands of photos costs only its file list.

>>> import numpy as np
>>> ds = ArrayDataset(np.zeros((4, 8, 8), np.uint8), [0, 1, 1, 0], classes=["a", "b"])
>>> img, label = ds[1]
>>> img.shape, label
((8, 8), 1)
"""
from __future__ import annotations

import inspect
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

from .image_files import (IMG_EXTENSIONS, ImageReadError, SkippedSample, check_channels,
                          is_image_file, load_image, verify_image)
from .transforms import Compose, Transform


def _as_transform(transform: Callable | None) -> Transform | None:
    if transform is None or isinstance(transform, Transform):
        return transform
    if not callable(transform):
        raise TypeError(f"transform must be callable, got {type(transform).__name__}")
    return Compose([transform])


def takes_rng(dataset) -> bool:
    """Whether ``dataset.__getitem__`` accepts an ``rng`` argument.

    >>> takes_rng([1, 2]), takes_rng(ArrayDataset(np.zeros((1, 2, 2), np.uint8), [0]))
    (False, True)
    """
    return isinstance(dataset, Dataset) or _getitem_takes_rng(type(dataset))


@lru_cache(maxsize=None)
def _getitem_takes_rng(cls: type) -> bool:
    try:
        return "rng" in inspect.signature(cls.__getitem__).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def get_item(dataset, index: int, rng=None):
    """``dataset.__getitem__(index, rng)`` if the dataset takes a generator, else
    ``dataset[index]``: lets Subset and DataLoader wrap any indexable dataset.

    >>> get_item([("img", 0)], 0)
    ('img', 0)
    """
    if takes_rng(dataset):
        return dataset.__getitem__(index, rng)
    return dataset[index]


class Dataset:
    """Base class: ``__len__``, ``__getitem__(index, rng=None) -> (image, label)``,
    ``classes`` (names, label i is ``classes[i]``) and ``targets`` (every label, without
    decoding anything).

    >>> class Two(Dataset):
    ...     classes = ["x"]
    ...     targets = [0, 0]
    ...     def __len__(self): return 2
    ...     def __getitem__(self, index, rng=None): return np.zeros((1, 1)), 0
    >>> len(Two())
    2
    """

    classes: list[str] = []
    transform: Transform | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int, rng=None):
        raise NotImplementedError

    @property
    def class_to_idx(self) -> dict[str, int]:
        """{class name: label}."""
        return {c: i for i, c in enumerate(self.classes)}

    def _check_index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, got "
                            f"{type(index).__name__}")
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__} index {i} out of range for {n} samples")
        return i + n if i < 0 else i

    def _transform(self, img, rng):
        return img if self.transform is None else self.transform(img, rng)

    def _repr_lines(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        lines = [f"Number of datapoints: {len(self)}"] + self._repr_lines()
        if self.transform is not None:
            lines.append(f"Transform: {self.transform!r}".replace("\n", "\n    "))
        return type(self).__name__ + "".join(f"\n    {s}" for s in lines)


class FileDataset(Dataset):
    """A dataset of image files decoded on demand, shared by ImageFolder and ELPV.

    ``samples`` is [(path, label)], ``targets`` the labels. ``channels`` is the mode files
    are converted to ("RGB", "L", or None to keep each file's). With ``on_error="raise"``
    an unreadable file raises ImageReadError naming it when it is loaded. With
    ``on_error="skip"`` every file is checked with ``Image.verify`` at construction (it
    reads no pixels) and those that fail are left out before any index exists; a file
    that still fails to decode later is recorded and raises SkippedSample, which
    DataLoader turns into a missing sample of its batch. Either way, ``skipped`` lists the
    paths left out, and the indices of the other samples never change during a run.

    >>> ds = FileDataset([("a.png", 0), ("b.png", 1)], ["cat", "dog"])
    >>> len(ds), ds.targets
    (2, [0, 1])
    """

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str],
                 transform: Callable | None = None, on_error: str = "raise",
                 channels: str | None = "RGB"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.channels = check_channels(channels)
        self.transform = _as_transform(transform)
        self.classes = list(classes)
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        samples = [(str(p), int(t)) for p, t in samples]
        if on_error == "skip":
            kept = []
            for path, target in samples:
                if verify_image(path) is None:
                    kept.append((path, target))
                else:
                    self.skipped.append(path)
            if self.skipped:
                shown = ", ".join(self.skipped[:3]) + (", ..." if len(self.skipped) > 3
                                                       else "")
                warnings.warn(f"{type(self).__name__}: skipped {len(self.skipped)} "
                              f"unreadable file(s): {shown}", stacklevel=3)
            samples = kept
        self.samples: list[tuple[str, int]] = samples
        self.targets: list[int] = [t for _, t in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Image.Image:
        """The decoded image at ``index``, converted to ``channels``, no transform."""
        path, _ = self.samples[self._check_index(index)]
        try:
            return load_image(path, self.channels)
        except ImageReadError as e:
            if self.on_error == "raise":
                raise
            with self._lock:
                if path not in self.skipped:
                    self.skipped.append(path)
            raise SkippedSample(path, e.reason) from e

    def __getitem__(self, index: int, rng=None):
        """(image, label): a PIL image, or what the transform makes of it (float32
        (C, H, W) when it ends in ToArray/Normalize)."""
        i = self._check_index(index)
        return self._transform(self.load(i), rng), self.samples[i][1]


class ImageFolder(FileDataset):
    """Images in one sub-folder per class, as torchvision's ImageFolder::

        root/cat/001.jpg, root/cat/more/002.png, root/dog/xyz.webp, ...

    Classes are the sub-folder names sorted (``sorted(e.name for e in os.scandir(root)
    if e.is_dir())``, so "B" < "a"; hidden folders count too, as in torchvision), labels
    their positions. Each class folder is walked recursively (following links) and files
    whose names end in ``extensions`` (case-insensitive) are taken in sorted order.
    Errors: root missing, no class folder, a class folder without any image (named).
    See FileDataset for ``on_error``, ``channels`` and ``skipped``.

    >>> ds = ImageFolder("photos", transform=ToArray())  # doctest: +SKIP
    >>> ds.classes, ds[0][0].shape  # doctest: +SKIP
    (['cat', 'dog'], (3, 375, 500))
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 on_error: str = "raise", channels: str | None = "RGB",
                 extensions: Sequence[str] = IMG_EXTENSIONS):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            what = "is not a folder" if os.path.exists(self.root) else "does not exist"
            raise FileNotFoundError(f"ImageFolder: root {self.root} {what}")
        classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {self.root}; expected "
                                    f"one sub-folder of images per class")
        self.extensions = tuple(extensions)
        samples, empty, special = [], [], []
        for label, name in enumerate(classes):
            folder = os.path.join(self.root, name)
            found = []
            for path in self._walk(folder):
                if is_image_file(path, self.extensions):
                    (found if os.path.isfile(path) else special).append(path)
            if not found:
                empty.append(folder)
            samples.extend((path, label) for path in found)
        if empty:
            hidden = [f for f in empty if os.path.basename(f).startswith(".")]
            hint = (f" ({', '.join(hidden)} is a hidden folder, e.g. Jupyter's "
                    f".ipynb_checkpoints: delete it or move it out of root)" if hidden else "")
            raise FileNotFoundError(f"ImageFolder: no image files in class folder(s) "
                                    f"{', '.join(empty)}{hint}; supported extensions: "
                                    f"{', '.join(self.extensions)}")
        if special and on_error == "raise":
            raise ValueError(f"ImageFolder: {special[0]} is not a regular file (a named pipe, "
                             f"socket or device); remove it, or pass on_error='skip'")
        super().__init__(samples, classes, transform=transform, on_error=on_error,
                         channels=channels)
        if special:
            self.skipped.extend(special)
            warnings.warn(f"ImageFolder: skipped {len(special)} entry(ies) that are not "
                          f"regular files, without opening them: {', '.join(special[:3])}",
                          stacklevel=2)

    @staticmethod
    def _walk(folder: str) -> list[str]:
        """Every file under ``folder``, following links but entering each real folder once:
        a link back above ``folder`` (a symlink cycle) or to a folder already walked is
        skipped with a warning."""
        top = os.path.realpath(folder)
        seen, entries = {top}, []
        for dirpath, dirnames, fnames in os.walk(folder, followlinks=True):
            dirnames.sort()
            for d in list(dirnames):
                real = os.path.realpath(os.path.join(dirpath, d))
                cycle = os.path.commonpath([real, top]) == real
                if cycle or real in seen:
                    dirnames.remove(d)
                    why = "a symlink cycle" if cycle else "a folder already walked"
                    warnings.warn(f"ImageFolder: skipped {os.path.join(dirpath, d)}: it leads "
                                  f"back to {real} ({why})", stacklevel=3)
                seen.add(real)
            entries.append((dirpath, sorted(fnames)))
        return [os.path.join(d, f) for d, fnames in sorted(entries) for f in fnames]

    def _repr_lines(self) -> list[str]:
        return [f"Root location: {self.root}", f"Classes: {len(self.classes)}"]


class ArrayDataset(Dataset):
    """Images held in a NumPy array, with integer labels.

    ``images``: uint8 (N, H, W) or (N, H, W, C), or floating (N, C, H, W) (kept as
    float32). Samples come out as read-only views, (H, W[, C]) uint8 or (C, H, W) float32,
    through ``transform``. ``labels``: N ints in [0, len(classes)); ``classes`` defaults to
    "0", "1", ... up to the largest label.

    >>> ds = ArrayDataset(np.zeros((2, 3, 4, 4), np.float32), [1, 0])
    >>> ds.classes, ds[0][0].shape
    (['0', '1'], (3, 4, 4))
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray,
                 transform: Callable | None = None, classes: Sequence[str] | None = None):
        images = np.asarray(images)
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[3] not in (1, 2, 3, 4):
            raise ValueError(f"ArrayDataset: uint8 images must be (N, H, W) or (N, H, W, C) "
                             f"with C in 1..4, got shape {images.shape}")
        if images.dtype == np.uint8 and images.ndim in (3, 4):
            pass
        elif np.issubdtype(images.dtype, np.floating) and images.ndim == 4:
            images = images.astype(np.float32, copy=False)
        else:
            raise ValueError(f"ArrayDataset: expected uint8 (N, H, W) or (N, H, W, C), or "
                             f"floating (N, C, H, W) images, got {images.dtype} with shape "
                             f"{images.shape}")
        labels_arr = np.asarray(labels)
        if labels_arr.ndim != 1 or labels_arr.shape[0] != images.shape[0]:
            raise ValueError(f"ArrayDataset: expected {images.shape[0]} labels (one per "
                             f"image), got shape {labels_arr.shape}")
        if labels_arr.size and (labels_arr.dtype == bool
                                or not np.issubdtype(labels_arr.dtype, np.integer)):
            raise TypeError(f"ArrayDataset: labels must be integers, got {labels_arr.dtype}")
        labels_arr = labels_arr.astype(np.int64)
        if classes is None:
            top = int(labels_arr.max()) + 1 if labels_arr.size else 0
            classes = [str(i) for i in range(top)]
        classes = list(classes)
        bad = labels_arr[(labels_arr < 0) | (labels_arr >= len(classes))]
        if bad.size:
            raise ValueError(f"ArrayDataset: label {int(bad[0])} outside [0, {len(classes)}) "
                             f"for {len(classes)} classes")
        labels_arr.flags.writeable = False
        self.images = images
        self.targets = labels_arr
        self.classes = classes
        self.transform = _as_transform(transform)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int, rng=None):
        """(image, label): a read-only view of the stored image, through the transform."""
        i = self._check_index(index)
        img = self.images[i]
        img.flags.writeable = False
        return self._transform(img, rng), int(self.targets[i])

    def _repr_lines(self) -> list[str]:
        return [f"Images: {self.images.dtype} {self.images.shape}",
                f"Classes: {len(self.classes)}"]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order; labels, classes and the
    generator pass through.

    >>> base = ArrayDataset(np.zeros((5, 2, 2), np.uint8), [0, 1, 0, 1, 0])
    >>> Subset(base, [4, 1]).targets
    [0, 1]
    """

    def __init__(self, dataset, indices: Sequence[int]):
        n = len(dataset)
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise IndexError(f"Subset: index {bad[0]} out of range for a dataset of {n}")
        self.dataset = dataset
        self.indices = idx

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int, rng=None):
        return get_item(self.dataset, self.indices[self._check_index(index)], rng)

    @property
    def classes(self) -> list[str]:  # type: ignore[override]
        return list(getattr(self.dataset, "classes", []))

    @property
    def targets(self) -> list[int]:
        """Labels of the subset's samples, read from the parent's ``targets``."""
        parent = getattr(self.dataset, "targets", None)
        if parent is None:
            raise AttributeError(f"Subset: {type(self.dataset).__name__} has no targets")
        return [int(parent[i]) for i in self.indices]

    @property
    def skipped(self) -> list[str]:
        """The parent's skipped files (for file datasets), else []."""
        return getattr(self.dataset, "skipped", [])

    def _repr_lines(self) -> list[str]:
        return [f"Of: {type(self.dataset).__name__} ({len(self.dataset)} samples)"]
