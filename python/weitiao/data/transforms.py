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


def _probability(p, what: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
            or not 0.0 <= p <= 1.0:
        raise ValueError(f"{what}: p must be in [0, 1], got {p!r}")
    return float(p)


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(v):
        raise ValueError(f"{what} must be finite numbers, got {v!r}")
    return float(v)


def _is_sequence(v) -> bool:
    return isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str)


def _numbers(values, n: int, what: str) -> tuple[float, ...]:
    if not _is_sequence(values) or len(values) != n:
        raise ValueError(f"{what} must be a sequence of {n} numbers, got {values!r}")
    return tuple(_number(v, what) for v in values)


def _symmetric_range(value, what: str, four: bool = False) -> tuple[float, float]:
    """(-v, v) from a number v >= 0, or a (min, max) pair with min <= max: torchvision's
    rule for rotation degrees and shears."""
    if _is_sequence(value):
        if len(value) != 2:
            pairs = "a (min, max) pair" + (" or 4 numbers" if four else "")
            raise ValueError(f"{what} must be a non-negative number or {pairs}, got "
                             f"{value!r}")
        lo, hi = _numbers(value, 2, what)
        if lo > hi:
            raise ValueError(f"{what} must be (min, max) with min <= max, got {value!r}")
        return lo, hi
    v = _number(value, what)
    if v < 0:
        raise ValueError(f"{what} must be a non-negative number or a (min, max) pair, got "
                         f"{value!r}")
    return 0.0 - v, v  # not -0.0


def _factor_range(value, what: str) -> tuple[float, float] | None:
    """ColorJitter's ranges: [max(0, 1 - v), 1 + v] from a number v >= 0, or a
    (min, max) pair of factors >= 0; None when the range is {1} (the step is off)."""
    if _is_sequence(value):
        lo, hi = _numbers(value, 2, what)
        if not 0.0 <= lo <= hi:
            raise ValueError(f"{what} must be (min, max) with 0 <= min <= max, got "
                             f"{value!r}")
    else:
        v = _number(value, what)
        if v < 0:
            raise ValueError(f"{what} must be a non-negative number or a (min, max) pair, "
                             f"got {value!r}")
        lo, hi = max(0.0, 1.0 - v), 1.0 + v
    return None if lo == hi == 1.0 else (lo, hi)


def _point(center, what: str) -> tuple[float, float] | None:
    return None if center is None else _numbers(center, 2, what)


def _fill(fill, what: str) -> float | tuple[float, ...]:
    """A fill value: one number, or one per channel."""
    if _is_sequence(fill):
        if len(fill) == 0:
            raise ValueError(f"{what}: fill must be a number or one number per channel, "
                             f"got {fill!r}")
        return tuple(_number(v, f"{what}: fill") for v in fill)
    return _number(fill, f"{what}: fill")


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
        self.p = _probability(p, "RandomHorizontalFlip")

    def __call__(self, img, rng=None):
        if as_generator(rng).random() < self.p:
            return F.hflip(img)
        return img

    def _args(self) -> str:
        return f"p={self.p}"


class RandomVerticalFlip(Transform):
    """Mirror top to bottom with probability ``p`` (one uniform draw per call).

    >>> RandomVerticalFlip(p=1.0)(np.array([[1], [2]], np.uint8), 0).tolist()
    [[2], [1]]
    """

    random = True

    def __init__(self, p: float = 0.5):
        self.p = _probability(p, "RandomVerticalFlip")

    def __call__(self, img, rng=None):
        if as_generator(rng).random() < self.p:
            return F.vflip(img)
        return img

    def _args(self) -> str:
        return f"p={self.p}"


class RandomRot90(Transform):
    """Turn by k * 90 degrees counter-clockwise, k drawn uniformly from {0, 1, 2, 3}. Exact
    (``np.rot90`` on the spatial axes, Pillow's ``Image.transpose``: no interpolation); k = 0
    returns the image itself. Together with ``RandomHorizontalFlip`` this draws uniformly
    from the 8 symmetries of the square, for images with no canonical "up" (solar cells,
    microscopy, satellite tiles).

    A non-square image comes out **transposed in shape** (height and width swapped) when k
    is odd, so resize to a square before this step if a batch needs one size.

    >>> t = RandomRot90()
    >>> t.get_params(np.random.default_rng(0))
    3
    >>> t(np.zeros((2, 5), np.uint8), np.random.default_rng(0)).shape
    (5, 2)
    """

    random = True

    @staticmethod
    def get_params(rng) -> int:
        """The number k of quarter turns, uniform in {0, 1, 2, 3}."""
        return int(as_generator(rng).integers(0, 4))

    def __call__(self, img, rng=None):
        return F.rot90(img, self.get_params(rng))


class RandomRotation(Transform):
    """Rotate by an angle drawn uniformly from ``degrees`` (a number d >= 0 means
    (-d, d); or a (min, max) pair), counter-clockwise positive, with Pillow's
    ``Image.rotate``: torchvision's ``RandomRotation`` on PIL images.

    ``interpolation`` is "nearest" (default, as torchvision), "bilinear" or "bicubic";
    ``expand=True`` grows the output to hold the whole rotated image (so its size depends
    on the angle); ``center`` is (x, y) in pixels from the top-left corner, default the
    image centre; ``fill`` (a number or one per channel, in the image's units: 0-255 for
    PIL images and uint8 arrays, the array's values for float ones) paints the corners
    that come from outside the image.

    >>> t = RandomRotation((90, 90))
    >>> t(np.array([[1, 2], [3, 4]], np.uint8), 0).tolist()
    [[2, 4], [1, 3]]
    """

    random = True

    def __init__(self, degrees: float | Sequence[float], interpolation: str = "nearest",
                 expand: bool = False, center: Sequence[float] | None = None, fill=0):
        self.degrees = _symmetric_range(degrees, "RandomRotation: degrees")
        F._warp_filter(interpolation, "RandomRotation")
        self.interpolation = interpolation
        self.expand = bool(expand)
        self.center = _point(center, "RandomRotation: center")
        self.fill = _fill(fill, "RandomRotation")

    @staticmethod
    def get_params(degrees: tuple[float, float], rng) -> float:
        """The angle in degrees, uniform in ``degrees`` = (min, max).

        >>> RandomRotation.get_params((-10.0, 10.0), 0) == 20 * 0.6369616873214543 - 10
        True
        """
        return float(as_generator(rng).uniform(degrees[0], degrees[1]))

    def __call__(self, img, rng=None):
        angle = self.get_params(self.degrees, rng)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def _args(self) -> str:
        return (f"degrees={self.degrees}, interpolation={self.interpolation!r}, "
                f"expand={self.expand}, center={self.center}, fill={self.fill}")


class RandomAffine(Transform):
    """A random affine warp keeping the image centre fixed, with torchvision's sampling and
    matrix (``RandomAffine`` on PIL images), applied with Pillow's ``Image.transform``:

    - ``degrees``: a number d >= 0 (angle uniform in (-d, d)) or (min, max); **clockwise**
      positive, torchvision's convention for affine (``RandomRotation`` turns the other way);
    - ``translate`` = (a, b), fractions in [0, 1]: shifts uniform in (-a * width, a * width)
      and (-b * height, b * height), rounded to whole pixels;
    - ``scale`` = (min, max), min > 0: the zoom factor, uniform;
    - ``shear``: a number s >= 0 (x shear uniform in (-s, s)), (min, max) for x, or
      (xmin, xmax, ymin, ymax) for x and y, in degrees;
    - ``interpolation``: "nearest" (default, as torchvision), "bilinear" or "bicubic";
      ``fill``: a number or one per channel, in the image's units; ``center``: (x, y) in
      pixels, default (width / 2, height / 2).

    The size is kept: what leaves the frame is cut, what enters is ``fill``. See
    ``functional.inverse_affine_matrix`` for the maths.

    >>> t = RandomAffine(0, translate=(0.5, 0.0))
    >>> t.get_params(1, 4, t.degrees, t.translate, t.scale, t.shear, 1)
    (0.0, (2, 0), 1.0, (0.0, 0.0))
    >>> t(np.array([[1, 2, 3, 4]], np.uint8), 1).tolist()
    [[0, 0, 1, 2]]
    """

    random = True

    def __init__(self, degrees: float | Sequence[float],
                 translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None,
                 shear: float | Sequence[float] | None = None,
                 interpolation: str = "nearest", fill=0,
                 center: Sequence[float] | None = None):
        self.degrees = _symmetric_range(degrees, "RandomAffine: degrees")
        self.translate = None
        if translate is not None:
            t = _numbers(translate, 2, "RandomAffine: translate")
            if not all(0.0 <= v <= 1.0 for v in t):
                raise ValueError(f"RandomAffine: translate fractions must be in [0, 1], "
                                 f"got {translate!r}")
            self.translate = t
        self.scale = None
        if scale is not None:
            s = _numbers(scale, 2, "RandomAffine: scale")
            if not 0 < s[0] <= s[1]:
                raise ValueError(f"RandomAffine: scale must be (min, max) with 0 < min <= "
                                 f"max, got {scale!r}")
            self.scale = s
        self.shear = None
        if shear is not None:
            if _is_sequence(shear) and len(shear) == 4:
                self.shear = (_symmetric_range(shear[:2], "RandomAffine: shear")
                              + _symmetric_range(shear[2:], "RandomAffine: shear"))
            else:
                self.shear = _symmetric_range(shear, "RandomAffine: shear", four=True)
        F._warp_filter(interpolation, "RandomAffine")
        self.interpolation = interpolation
        self.fill = _fill(fill, "RandomAffine")
        self.center = _point(center, "RandomAffine: center")

    @staticmethod
    def get_params(height: int, width: int, degrees: tuple[float, float],
                   translate: tuple[float, float] | None,
                   scale: tuple[float, float] | None, shear: tuple[float, ...] | None,
                   rng) -> tuple[float, tuple[int, int], float, tuple[float, float]]:
        """(angle, (tx, ty), scale, (shear_x, shear_y)) for a height x width image, drawn
        in torchvision's order: angle, then tx and ty, then scale, then the shears (each
        only when its range is given; 0, (0, 0), 1 and (0, 0) otherwise)."""
        rng = as_generator(rng)
        angle = float(rng.uniform(degrees[0], degrees[1]))
        tx = ty = 0
        if translate is not None:
            max_dx, max_dy = translate[0] * width, translate[1] * height
            tx = int(round(float(rng.uniform(-max_dx, max_dx))))
            ty = int(round(float(rng.uniform(-max_dy, max_dy))))
        s = 1.0 if scale is None else float(rng.uniform(scale[0], scale[1]))
        shear_x = shear_y = 0.0
        if shear is not None:
            shear_x = float(rng.uniform(shear[0], shear[1]))
            if len(shear) == 4:
                shear_y = float(rng.uniform(shear[2], shear[3]))
        return angle, (tx, ty), s, (shear_x, shear_y)

    def __call__(self, img, rng=None):
        h, w = F.image_size(img)
        angle, translate, scale, shear = self.get_params(
            h, w, self.degrees, self.translate, self.scale, self.shear, rng)
        return F.affine(img, angle, translate, scale, shear, self.interpolation, self.fill,
                        self.center)

    def _args(self) -> str:
        return (f"degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"shear={self.shear}, interpolation={self.interpolation!r}, "
                f"fill={self.fill}, center={self.center}")


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, in a random order: torchvision's
    ``ColorJitter`` without hue. Each argument is a number v >= 0 (factor uniform in
    [max(0, 1 - v), 1 + v]; 0 turns the step off) or a (min, max) pair of factors >= 0.
    Per call: a random order of the three steps, then one factor for each step that is on.

    - brightness blends with black, contrast with the mean grey level of the whole image,
      saturation with the grey image (a no-op on 1-channel images);
    - PIL images and uint8 arrays ("L" or "RGB", 1 or 3 channels) go through Pillow's
      ``ImageEnhance`` (torchvision's PIL path, rounded to uint8 after each step); float
      (C, H, W) arrays use torchvision's tensor formulas (luma 0.2989 R + 0.587 G +
      0.114 B) and are clipped to [0, 1] after each step.

    >>> t = ColorJitter(brightness=0.5)
    >>> t.brightness
    (0.5, 1.5)
    >>> t(np.full((2, 2), 100, np.uint8), 0).shape
    (2, 2)
    """

    random = True

    def __init__(self, brightness: float | Sequence[float] = 0,
                 contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0):
        self.brightness = _factor_range(brightness, "ColorJitter: brightness")
        self.contrast = _factor_range(contrast, "ColorJitter: contrast")
        self.saturation = _factor_range(saturation, "ColorJitter: saturation")

    @staticmethod
    def get_params(brightness: tuple[float, float] | None,
                   contrast: tuple[float, float] | None,
                   saturation: tuple[float, float] | None, rng):
        """(order, b, c, s): a permutation of (0, 1, 2) (brightness, contrast, saturation)
        drawn first, then a uniform factor for each step whose range is not None (None for
        the others), as torchvision's ``get_params``."""
        rng = as_generator(rng)
        order = tuple(int(i) for i in rng.permutation(3))
        factors = [None if r is None else float(rng.uniform(r[0], r[1]))
                   for r in (brightness, contrast, saturation)]
        return (order, *factors)

    def __call__(self, img, rng=None):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation,
                                          rng)
        steps = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)
        for i in order:
            if factors[i] is not None:
                img = steps[i](img, factors[i])
        return img

    def _args(self) -> str:
        return (f"brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}")


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
    Output: float32 (3, input_size, input_size). These are
    ``augment.train_pipeline(config, "standard")`` and
    ``augment.eval_pipeline(config, crop=True)``, whatever the default preset is; other
    presets are in ``weitiao.data.augment``.

    >>> from weitiao.models.config import ModelConfig
    >>> default_pipeline(ModelConfig(input_size=32, resize_size=36))(
    ...     np.zeros((40, 50), np.uint8)).shape
    (3, 32, 32)
    """
    from .augment import eval_pipeline, train_pipeline  # augment builds on this module

    return train_pipeline(config, "standard") if train else eval_pipeline(config, crop=True)
