"""Image transforms with torchvision's semantics and an explicit random generator.

Each transform is called as ``t(img, rng)``: random ones draw only from ``rng`` (a
``numpy.random.Generator``, an int seed, or None for fresh entropy), deterministic ones
ignore it, so a pipeline run twice with equal generators gives identical arrays. Images
are PIL images, uint8 (H, W[, C]) arrays or float (C, H, W) arrays (see ``functional``).

The pipelines of the d2l fine-tuning chapter, with the normalisation read from the model:

>>> from weitiao.models.config import ModelConfig
>>> train = default_pipeline(ModelConfig(), train=True)
>>> import numpy as np
>>> img = np.zeros((300, 400, 3), dtype=np.uint8)
>>> train(img, np.random.default_rng(0)).shape
(3, 224, 224)
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import numpy as np

from ..nn.init import as_generator
from . import functional as F


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return int(v)


def _pair(size, what: str) -> tuple[int, int]:
    """(h, w) from an int or a 1- or 2-sequence, as torchvision's _setup_size."""
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) == 1:
            size = (size[0], size[0])
        if len(size) != 2:
            raise ValueError(f"{what} must be an int or a (height, width) pair, got {size!r}")
        return _positive_int(size[0], what), _positive_int(size[1], what)
    s = _positive_int(size, what)
    return s, s


def _takes_rng(t: Callable) -> bool:
    if isinstance(t, Transform):
        return True
    try:
        return "rng" in inspect.signature(t).parameters
    except (TypeError, ValueError):
        return False


class Transform:
    """Base class: ``__call__(img, rng=None)`` returns the transformed image. Subclasses
    that draw random numbers set ``random = True`` and draw only from ``rng``.

    >>> class Invert(Transform):
    ...     def __call__(self, img, rng=None):
    ...         return 255 - img
    >>> Invert()(np.zeros((1, 1), np.uint8)).tolist()
    [[255]]
    """

    random: bool = False

    def __call__(self, img, rng=None):
        raise NotImplementedError

    def _args(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._args()})"


class Compose(Transform):
    """Apply ``transforms`` in order, passing every one of them the same generator, so
    random draws happen in a fixed order. Plain callables are called with the image alone,
    or with ``rng=`` too if they have a parameter of that name.

    >>> t = Compose([ConvertMode("RGB"), ToArray()])
    >>> t(np.zeros((2, 2), np.uint8)).shape
    (3, 2, 2)
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")
        self._rng_args = [_takes_rng(t) for t in self.transforms]

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(t, "random", takes) for t, takes in
                   zip(self.transforms, self._rng_args))

    def __call__(self, img, rng=None):
        if self.random and not isinstance(rng, np.random.Generator):
            rng = as_generator(rng)  # one generator for the whole pipeline
        for t, takes in zip(self.transforms, self._rng_args):
            img = t(img, rng) if isinstance(t, Transform) else (
                t(img, rng=rng) if takes else t(img))
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Resize(Transform):
    """Resize with Pillow's antialiased filters, as torchvision's PIL path.

    ``size`` an int: the shorter side becomes ``size`` and the longer one
    ``int(size * long / short)``; ``size`` = (h, w): exactly that. ``interpolation`` is
    "bilinear" (default), "bicubic", "nearest", "box", "hamming" or "lanczos";
    ``max_size`` caps the longer side when ``size`` is an int.

    >>> Resize(100)(np.zeros((200, 300, 3), np.uint8)).shape
    (100, 150, 3)
    """

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear",
                 max_size: int | None = None):
        if isinstance(size, Sequence) and not isinstance(size, str):
            if len(size) not in (1, 2):
                raise ValueError(f"Resize: size must be an int or a (height, width) pair, "
                                 f"got {size!r}")
            size = tuple(_positive_int(s, "Resize size") for s in size)
            if len(size) == 1:
                size = size[0]
        else:
            size = _positive_int(size, "Resize size")
        self.size = size
        self.interpolation = interpolation
        F.pil_interpolation(interpolation)  # check the name now
        self.max_size = max_size
        if max_size is not None:
            F.resized_output_size(1, 1, size, max_size)  # checks max_size against size

    def __call__(self, img, rng=None):
        h, w = F.image_size(img)
        out = F.resized_output_size(h, w, self.size, self.max_size)
        if out == (h, w):  # torchvision returns the image unchanged
            return img
        return F.resize(img, out, self.interpolation)

    def _args(self) -> str:
        extra = f", max_size={self.max_size}" if self.max_size is not None else ""
        return f"size={self.size}, interpolation={self.interpolation!r}{extra}"


class CenterCrop(Transform):
    """The central ``size`` (int or (h, w)) window, torchvision's rounding: top =
    ``int(round((h - th) / 2.0))`` (half to even). An image smaller than the crop is padded
    with zeros, ``(th - h) // 2`` rows above and the rest below (likewise for columns), as
    torchvision does; no error is raised.

    >>> CenterCrop(2)(np.arange(25, dtype=np.uint8).reshape(5, 5)).tolist()
    [[12, 13], [17, 18]]
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "CenterCrop size")

    def __call__(self, img, rng=None):
        return F.center_crop(img, self.size)

    def _args(self) -> str:
        return f"size={self.size}"


class RandomResizedCrop(Transform):
    """Crop a random window and resize it to ``size`` (int or (h, w)): torchvision's
    sampling. Up to 10 attempts draw an area fraction uniformly in ``scale`` and an aspect
    ratio (width / height) log-uniformly in ``ratio``; w = round(sqrt(area * ratio)),
    h = round(sqrt(area / ratio)); the first window that fits gets a uniform position.
    If none fits, the largest centred window whose ratio is clamped into ``ratio``.

    >>> t = RandomResizedCrop(32)
    >>> t(np.zeros((50, 80, 3), np.uint8), np.random.default_rng(0)).shape
    (32, 32, 3)
    """

    random = True

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolation: str = "bilinear"):
        self.size = _pair(size, "RandomResizedCrop size")
        scale, ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"RandomResizedCrop: scale must be (min, max) with 0 < min <= "
                             f"max, got {scale}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: ratio must be (min, max) with 0 < min <= "
                             f"max, got {ratio}")
        self.scale, self.ratio = scale, ratio
        self.interpolation = interpolation
        F.pil_interpolation(interpolation)

    @staticmethod
    def get_params(height: int, width: int, scale: tuple[float, float],
                   ratio: tuple[float, float], rng) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a random window of a height x width image.

        >>> RandomResizedCrop.get_params(10, 1000, (0.9, 1.0), (0.75, 4 / 3), 0)
        (0, 493, 10, 13)
        """
        rng = as_generator(rng)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect_ratio)))
            h = int(round(math.sqrt(target_area / aspect_ratio)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w = width
            h = int(round(w / min(ratio)))
        elif in_ratio > max(ratio):
            h = height
            w = int(round(h * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img, rng=None):
        h, w = F.image_size(img)
        top, left, ch, cw = self.get_params(h, w, self.scale, self.ratio, rng)
        return F.resize(F.crop(img, top, left, ch, cw), self.size, self.interpolation)

    def _args(self) -> str:
        return (f"size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"interpolation={self.interpolation!r}")


class RandomHorizontalFlip(Transform):
    """Mirror left to right with probability ``p`` (one uniform draw per call).

    >>> RandomHorizontalFlip(p=1.0)(np.array([[1, 2]], np.uint8), 0).tolist()
    [[2, 1]]
    """

    random = True

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, img, rng=None):
        if as_generator(rng).random() < self.p:
            return F.hflip(img)
        return img

    def _args(self) -> str:
        return f"p={self.p}"


class ToArray(Transform):
    """PIL image or uint8 (H, W[, C]) array -> float32 (C, H, W) in [0, 1], C-contiguous
    (torchvision's ``ToTensor``). Float (C, H, W) arrays pass through as float32.

    >>> ToArray()(np.full((2, 2, 3), 255, np.uint8)).max()
    np.float32(1.0)
    """

    def __call__(self, img, rng=None):
        return F.to_array(img)


class Normalize(Transform):
    """(x - mean) / std per channel of a float32 (C, H, W) array.

    >>> Normalize((0.5,), (0.25,))(np.ones((1, 1, 1), np.float32)).item()
    2.0
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std {self.std} contains a zero, which would "
                             f"divide by zero")

    def __call__(self, img, rng=None):
        return F.normalize(img, self.mean, self.std)

    def _args(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class ConvertMode(Transform):
    """Convert to a Pillow mode, typically "RGB" so grayscale, palette, RGBA and CMYK
    images feed a 3-channel network (``Image.convert``, as torchvision's loader; alpha is
    dropped, not composited). Arrays support "RGB" and "L".

    >>> ConvertMode("RGB")(np.zeros((2, 2), np.uint8)).shape
    (2, 2, 3)
    """

    def __init__(self, mode: str = "RGB"):
        self.mode = mode

    def __call__(self, img, rng=None):
        return F.convert_mode(img, self.mode)

    def _args(self) -> str:
        return repr(self.mode)


def default_pipeline(config, train: bool = False) -> Compose:
    """The d2l fine-tuning pipelines, sized and normalised as ``config`` (a ModelConfig):

    - train: ConvertMode("RGB"), RandomResizedCrop(input_size), RandomHorizontalFlip(),
      ToArray(), Normalize(mean, std);
    - eval: ConvertMode("RGB"), Resize(resize_size), CenterCrop(input_size), ToArray(),
      Normalize(mean, std).

    Both use ``config.interpolation``. The leading ConvertMode turns grayscale or RGBA
    inputs into the 3 channels the normalisation expects and leaves RGB images alone.
    Output: float32 (3, input_size, input_size).

    >>> from weitiao.models.config import ModelConfig
    >>> default_pipeline(ModelConfig(input_size=32, resize_size=36))(
    ...     np.zeros((40, 50), np.uint8)).shape
    (3, 32, 32)
    """
    head = [ConvertMode("RGB")] if len(config.mean) == 3 else []
    if train:
        geometry = [RandomResizedCrop(config.input_size, interpolation=config.interpolation),
                    RandomHorizontalFlip()]
    else:
        geometry = [Resize(config.resize_size, interpolation=config.interpolation),
                    CenterCrop(config.input_size)]
    return Compose(head + geometry + [ToArray(), Normalize(config.mean, config.std)])
