"""Fashion-MNIST from its four IDX files: Debian's ``dataset-fashion-mnist`` package
installs them under /usr/share/datasets/fashion-mnist; any folder holding them (gzipped or
not, or in torchvision's FashionMNIST/raw layout) works too.

>>> CLASSES[0], CLASSES[9]
('T-shirt/top', 'Ankle boot')
>>> train = FashionMNIST(train=True)  # doctest: +SKIP
>>> train.data.shape, train.classes[0]  # doctest: +SKIP
((60000, 28, 28), 'T-shirt/top')
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Callable

import numpy as np

from .datasets import ArrayDataset

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")
FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
INSTALL_HINT = "sudo apt-get install dataset-fashion-mnist"


def find_idx_file(root: str, stem: str) -> str:
    """The path of IDX file ``stem`` in ``root`` (or root/FashionMNIST/raw), with or
    without ".gz"; FileNotFoundError naming the file and how to get it otherwise.

    >>> find_idx_file(DEFAULT_ROOT, "t10k-labels-idx1-ubyte")  # doctest: +SKIP
    '/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz'
    """
    folders = [root, os.path.join(root, "FashionMNIST", "raw")]
    for folder in folders:
        for name in (stem, stem + ".gz"):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found in {root}; install "
                            f"the Debian package ({INSTALL_HINT}) or pass root= a folder "
                            f"holding the four IDX files")


def read_idx(path: str) -> np.ndarray:
    """The uint8 array stored in an IDX file (gzip or plain), shaped as its header says.

    The header is two zero bytes, a type byte (0x08 = unsigned byte), the number of
    dimensions, then each dimension as a big-endian uint32.

    >>> read_idx("t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header says {shape} ({expected} bytes) but the file holds "
                         f"{len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


class FashionMNIST(ArrayDataset):
    """Zalando's Fashion-MNIST: 60000 training or 10000 test images, uint8 (28, 28), in 10
    classes ("T-shirt/top", "Trouser", ..., "Ankle boot").

    ``root``: a folder with the four IDX files (default: Debian's
    /usr/share/datasets/fashion-mnist). ``data`` holds the (N, 28, 28) images, ``targets``
    the labels. Samples are (28, 28) uint8 arrays before ``transform``; DataLoader turns
    untransformed samples into float32 (1, 28, 28) in [0, 1].

    >>> test = FashionMNIST(train=False)  # doctest: +SKIP
    >>> len(test), test[0][1]  # doctest: +SKIP
    (10000, 9)
    """

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None):
        self.root = os.fspath(root) if root is not None else DEFAULT_ROOT
        self.train = bool(train)
        image_file, label_file = (find_idx_file(self.root, s) for s in FILES[self.train])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"Fashion-MNIST: {image_file} holds {images.shape} and "
                             f"{label_file} holds {labels.shape}; expected (N, 28, 28) "
                             f"images and N labels")
        super().__init__(images, labels, transform=transform, classes=list(CLASSES))
        self.data = self.images

    def _repr_lines(self) -> list[str]:
        return [f"Split: {'Train' if self.train else 'Test'}", f"Root location: {self.root}"]
