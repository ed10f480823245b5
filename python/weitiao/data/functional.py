"""The image operations behind the transforms, one function each, as torchvision's
``transforms.functional``: sizes, crop, resize, flips and quarter turns, rotation and affine
warps, brightness/contrast/saturation, mode conversion, to-array, normalise.

Three kinds of image are accepted everywhere:

- a ``PIL.Image.Image`` (what ImageFolder decodes);
- a uint8 NumPy array laid out (H, W) or (H, W, C), as Pillow and ``ToTensor`` read arrays;
- a floating NumPy array laid out (C, H, W), as torchvision's tensors (what ``ToArray``
  makes; (N, C, H, W) float32 datasets hand these out).

Geometric operations return the kind they were given. Resizing, rotation and affine warps
always go through Pillow (floating arrays channel by channel in Pillow's 32-bit float mode
"F"), so a PIL image and the same pixels as an array give the same result.

>>> import numpy as np
>>> img = np.zeros((4, 6, 3), dtype=np.uint8)
>>> image_size(crop(img, 1, 1, 2, 3))
(2, 3)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


def pil_interpolation(name: str) -> Image.Resampling:
    """Pillow's resampling filter for a torchvision interpolation name ("bilinear", ...).

    >>> pil_interpolation("bicubic") == Image.Resampling.BICUBIC
    True
    """
    try:
        return INTERPOLATIONS[str(name).lower()]
    except KeyError:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}, "
                         f"got {name!r}") from None


def _check_array(img: np.ndarray) -> str:
    """"hwc" for uint8 (H, W) / (H, W, C) arrays, "chw" for floating (C, H, W) arrays."""
    if img.dtype == np.uint8:
        if img.ndim in (2, 3):
            return "hwc"
        raise ValueError(f"expected a uint8 image shaped (H, W) or (H, W, C), got shape "
                         f"{img.shape}")
    if np.issubdtype(img.dtype, np.floating):
        if img.ndim == 3:
            return "chw"
        raise ValueError(f"expected a floating image shaped (C, H, W), got shape {img.shape}")
    raise TypeError(f"expected a uint8 (H, W, C) or floating (C, H, W) array, got dtype "
                    f"{img.dtype}")


def _kind(img) -> str:
    if isinstance(img, Image.Image):
        return "pil"
    if isinstance(img, np.ndarray):
        return _check_array(img)
    raise TypeError(f"expected a PIL image or a NumPy array, got {type(img).__name__}")


def image_size(img) -> tuple[int, int]:
    """(height, width) of an image of any accepted kind.

    >>> image_size(np.zeros((3, 5, 7), dtype=np.float32))
    (5, 7)
    """
    kind = _kind(img)
    if kind == "pil":
        w, h = img.size
        return h, w
    if kind == "hwc":
        return img.shape[0], img.shape[1]
    return img.shape[1], img.shape[2]


def crop(img, top: int, left: int, height: int, width: int):
    """The ``height`` x ``width`` window whose top-left corner is (top, left); the parts of
    the window outside the image are zeros (Pillow's ``Image.crop`` behaviour, and what
    torchvision's tensor crop pads with).

    >>> crop(np.ones((2, 2), dtype=np.uint8), -1, 0, 3, 2).tolist()
    [[0, 0], [1, 1], [1, 1]]
    """
    kind = _kind(img)
    if height <= 0 or width <= 0:
        raise ValueError(f"crop: height and width must be positive, got {height}x{width}")
    if kind == "pil":
        return img.crop((left, top, left + width, top + height))
    h, w = image_size(img)
    y0, y1 = max(top, 0), min(top + height, h)
    x0, x1 = max(left, 0), min(left + width, w)
    inside = top >= 0 and left >= 0 and top + height <= h and left + width <= w
    if kind == "hwc":
        if inside:
            return np.ascontiguousarray(img[top:top + height, left:left + width])
        out = np.zeros((height, width) + img.shape[2:], dtype=img.dtype)
        if y0 < y1 and x0 < x1:
            out[y0 - top:y1 - top, x0 - left:x1 - left] = img[y0:y1, x0:x1]
        return out
    if inside:
        return np.ascontiguousarray(img[:, top:top + height, left:left + width])
    out = np.zeros((img.shape[0], height, width), dtype=img.dtype)
    if y0 < y1 and x0 < x1:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = img[:, y0:y1, x0:x1]
    return out


def resize(img, size: tuple[int, int], interpolation: str = "bilinear"):
    """Resize to exactly ``size`` = (height, width) with Pillow's antialiased filters
    (torchvision's PIL path). Floating (C, H, W) arrays are resized channel by channel in
    Pillow's float mode, so no rounding to uint8 happens.

    >>> resize(np.zeros((4, 6), dtype=np.uint8), (2, 3)).shape
    (2, 3)
    """
    kind = _kind(img)
    new_h, new_w = int(size[0]), int(size[1])
    if new_h <= 0 or new_w <= 0:
        raise ValueError(f"resize: the output size must be positive, got {new_h}x{new_w}")
    resample = pil_interpolation(interpolation)
    if kind == "pil":
        return img.resize((new_w, new_h), resample)
    if kind == "hwc":
        if img.ndim == 3 and img.shape[2] == 1:
            return resize(img[:, :, 0], size, interpolation)[:, :, None]
        return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(
            (new_w, new_h), resample))
    out = np.empty((img.shape[0], new_h, new_w), dtype=np.float32)
    for c in range(img.shape[0]):
        plane = Image.fromarray(np.ascontiguousarray(img[c], dtype=np.float32))
        out[c] = np.asarray(plane.resize((new_w, new_h), resample))
    return out


def hflip(img):
    """The image mirrored left to right.

    >>> hflip(np.array([[1, 2, 3]], dtype=np.uint8)).tolist()
    [[3, 2, 1]]
    """
    kind = _kind(img)
    if kind == "pil":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if kind == "hwc":
        return np.ascontiguousarray(img[:, ::-1])
    return np.ascontiguousarray(img[:, :, ::-1])


def vflip(img):
    """The image mirrored top to bottom.

    >>> vflip(np.array([[1], [2], [3]], dtype=np.uint8)).tolist()
    [[3], [2], [1]]
    """
    kind = _kind(img)
    if kind == "pil":
        return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if kind == "hwc":
        return np.ascontiguousarray(img[::-1])
    return np.ascontiguousarray(img[:, ::-1])


_QUARTER_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180,
                  3: Image.Transpose.ROTATE_270}


def rot90(img, k: int = 1):
    """The image turned ``k`` quarter turns counter-clockwise (``np.rot90`` on the spatial
    axes, Pillow's ``Image.transpose`` for PIL images): exact, no interpolation. Odd ``k``
    swap height and width. ``k`` is taken modulo 4; k = 0 returns the image itself.

    >>> rot90(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [[2, 4], [1, 3]]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"rot90: k must be an int, got {k!r}")
    kind = _kind(img)
    k = int(k) % 4
    if k == 0:
        return img
    if kind == "pil":
        return img.transpose(_QUARTER_TURNS[k])
    axes = (0, 1) if kind == "hwc" else (1, 2)
    return np.ascontiguousarray(np.rot90(img, k, axes=axes))


# Pillow's rotate and transform resample with these three filters only (as torchvision's
# rotate and affine).
WARP_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def _warp_filter(interpolation: str, what: str) -> Image.Resampling:
    if str(interpolation).lower() not in WARP_INTERPOLATIONS:
        raise ValueError(f"{what}: interpolation must be one of {list(WARP_INTERPOLATIONS)}, "
                         f"got {interpolation!r}")
    return pil_interpolation(interpolation)


def _fills(fill, bands: int, what: str) -> list[float]:
    """One fill value per band from a number or a sequence of ``bands`` numbers."""
    many = isinstance(fill, (Sequence, np.ndarray)) and not isinstance(fill, str)
    values = list(fill) if many else [fill]
    if len(values) == 1:
        values = values * bands
    if len(values) != bands:
        raise ValueError(f"{what}: fill has {len(values)} values for an image with {bands} "
                         f"channels")
    return [float(v) for v in values]


def _warp(img, op, fill, what: str):
    """Apply ``op(pil_image, fillcolor)``, a Pillow geometric operation, to an image of any
    kind: PIL images directly, uint8 arrays as the PIL image of the same pixels (channel by
    channel in mode "L" when Pillow has no mode for their channel count), floating (C, H, W)
    arrays channel by channel in mode "F" so no rounding happens. Integer modes get their
    fill truncated to int, as torchvision does."""
    kind = _kind(img)
    if kind == "pil":
        fills = _fills(fill, len(img.getbands()), what)
        if img.mode != "F":
            fills = [int(v) for v in fills]
        return op(img, fills[0] if len(fills) == 1 else tuple(fills))
    if kind == "chw":
        fills = _fills(fill, img.shape[0], what)
        planes = [np.asarray(op(Image.fromarray(np.ascontiguousarray(img[c], np.float32)),
                                fills[c])) for c in range(img.shape[0])]
        return np.stack(planes)
    fills = [int(v) for v in _fills(fill, 1 if img.ndim == 2 else img.shape[2], what)]
    if img.ndim == 2:
        return np.asarray(op(Image.fromarray(np.ascontiguousarray(img)), fills[0]))
    if img.shape[2] in (3, 4):
        return np.asarray(op(Image.fromarray(np.ascontiguousarray(img)), tuple(fills)))
    planes = [np.asarray(op(Image.fromarray(np.ascontiguousarray(img[:, :, c])), fills[c]))
              for c in range(img.shape[2])]
    return np.stack(planes, axis=2)


def rotate(img, angle: float, interpolation: str = "nearest", expand: bool = False,
           center: Sequence[float] | None = None, fill=0):
    """The image rotated ``angle`` degrees counter-clockwise about ``center`` (x, y in
    pixels from the top-left corner; default the image centre) with Pillow's
    ``Image.rotate``, as torchvision's ``rotate`` on PIL images. ``expand`` grows the output
    to hold the whole rotated image; otherwise the size is kept and corners are cut.
    ``fill`` (a number or one per channel, in the image's own units) paints the area that
    comes from outside the input. ``interpolation``: "nearest", "bilinear" or "bicubic".

    >>> rotate(np.array([[1, 2], [3, 4]], dtype=np.uint8), 90).tolist()
    [[2, 4], [1, 3]]
    """
    resample = _warp_filter(interpolation, "rotate")
    centre = None if center is None else (float(center[0]), float(center[1]))

    def op(im, fillcolor):
        return im.rotate(float(angle), resample, expand=bool(expand), center=centre,
                         fillcolor=fillcolor)

    return _warp(img, op, fill, "rotate")


def inverse_affine_matrix(center: Sequence[float], angle: float,
                          translate: Sequence[float], scale: float,
                          shear: Sequence[float]) -> tuple[float, ...]:
    """The six coefficients (a, b, c, d, e, f) Pillow's ``Image.transform(..., AFFINE)``
    takes, mapping each output pixel (x, y) back to the input point
    (a x + b y + c, d x + e y + f), for torchvision's affine warp.

    The forward map (x right, y down, angles in degrees) is
    ``p' = center + translate + scale * R(angle) Sy(shear_y) Sx(shear_x) (p - center)``:
    shear and rotation about the centre, then the translation, with everything scaled about
    the centre. R(t) = [[cos t, -sin t], [sin t, cos t]] turns a picture clockwise (y points
    down), Sx(s) = [[1, -tan s], [0, 1]] and Sy(s) = [[1, 0], [-tan s, 1]]. The product
    L = R Sy Sx has determinant 1, so its inverse is its adjugate and the inverse map is
    ``p = center + adj(L) (p' - center - translate) / scale``.

    >>> [round(v, 6) + 0.0 for v in inverse_affine_matrix((2, 2), 0, (1, 0), 2.0, (0, 0))]
    [0.5, 0.0, 0.5, 0.0, 0.5, 1.0]
    """
    t = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    # L = R(t) Sy(sy) Sx(sx) multiplied out: R(t) Sy(sy) = [[cos(t - sy) / cos sy, -sin t],
    # [sin(t - sy) / cos sy, cos t]], and the product with Sx(sx) adds -tan sx times
    # column 0 to column 1
    l00 = math.cos(t - sy) / math.cos(sy)
    l10 = math.sin(t - sy) / math.cos(sy)
    l01 = -l00 * math.tan(sx) - math.sin(t)
    l11 = -l10 * math.tan(sx) + math.cos(t)
    # adj(L) / scale
    a, b = l11 / scale, -l01 / scale
    d, e = -l10 / scale, l00 / scale
    cx, cy = float(center[0]), float(center[1])
    ox, oy = cx + float(translate[0]), cy + float(translate[1])  # where the centre lands
    return a, b, cx - a * ox - b * oy, d, e, cy - d * ox - e * oy


def affine(img, angle: float, translate: Sequence[float], scale: float,
           shear: Sequence[float], interpolation: str = "nearest", fill=0,
           center: Sequence[float] | None = None):
    """torchvision's ``affine`` on PIL images: rotate ``angle`` degrees **clockwise** (the
    convention of torchvision's affine, opposite to ``rotate``) and shear by
    ``shear`` = (x, y) degrees about ``center`` (default the image centre, (w/2, h/2)),
    scale by ``scale`` about it, and move by ``translate`` = (tx, ty) pixels; the size is
    kept. The warp is Pillow's ``Image.transform(size, AFFINE, inverse_affine_matrix(...))``;
    ``fill`` paints what comes from outside the input.

    >>> affine(np.array([[1, 2, 3]], dtype=np.uint8), 0, (1, 0), 1.0, (0, 0)).tolist()
    [[0, 1, 2]]
    """
    resample = _warp_filter(interpolation, "affine")
    h, w = image_size(img)
    if center is None:
        center = (w * 0.5, h * 0.5)
    matrix = inverse_affine_matrix(center, angle, translate, scale, shear)

    def op(im, fillcolor):
        return im.transform(im.size, Image.Transform.AFFINE, matrix, resample,
                            fillcolor=fillcolor)

    return _warp(img, op, fill, "affine")


def resized_output_size(height: int, width: int, size: int | Sequence[int],
                        max_size: int | None = None) -> tuple[int, int]:
    """The (height, width) torchvision's ``Resize(size, max_size=...)`` produces.

    An int (or a 1-sequence) is the new shorter side; the longer side becomes
    ``int(size * long / short)`` (truncated, as torchvision). A pair is (height, width).

    >>> resized_output_size(250, 333, 224)
    (224, 298)
    """
    if isinstance(size, int) or len(size) == 1:
        requested = size if isinstance(size, int) else int(size[0])
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = requested, int(requested * long / short)
        if max_size is not None:
            if max_size <= requested:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the "
                                 f"requested size {requested}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        return new_h, new_w
    if max_size is not None:
        raise ValueError("max_size is only supported when size is a single int")
    return int(size[0]), int(size[1])


def center_crop_box(height: int, width: int, crop_height: int,
                    crop_width: int) -> tuple[int, int]:
    """(top, left) of torchvision's centre crop, negative where the crop is larger than the
    image. torchvision pads such images with zeros, ``(crop - size) // 2`` before and the
    rest after, and then crops at ``int(round((size - crop) / 2.0))`` (Python's round, half
    to even); a negative offset here is the same window on the unpadded image.

    >>> center_crop_box(5, 7, 2, 2)
    (2, 2)
    >>> center_crop_box(3, 3, 6, 2)
    (-1, 0)
    """
    if crop_height > height:
        top = -((crop_height - height) // 2)
    else:
        top = int(round((height - crop_height) / 2.0))
    if crop_width > width:
        left = -((crop_width - width) // 2)
    else:
        left = int(round((width - crop_width) / 2.0))
    return top, left


def center_crop(img, size: tuple[int, int]):
    """The central ``size`` = (height, width) window, zero-padded where the image is smaller
    (torchvision's ``center_crop``).

    >>> center_crop(np.ones((4, 4), dtype=np.uint8), (2, 2)).shape
    (2, 2)
    """
    h, w = image_size(img)
    top, left = center_crop_box(h, w, size[0], size[1])
    return crop(img, top, left, size[0], size[1])


def convert_mode(img, mode: str):
    """The image in Pillow mode ``mode``. PIL images use ``Image.convert`` (palette images
    with a transparent colour go through RGBA, which gives the same RGB values without
    Pillow's warning); arrays support "RGB" (grey repeated, alpha dropped) and "L" (ITU-R
    601-2 luma, Pillow's formula).

    >>> convert_mode(np.zeros((2, 2), dtype=np.uint8), "RGB").shape
    (2, 2, 3)
    """
    kind = _kind(img)
    if kind == "pil":
        if img.mode == mode:
            return img
        if img.mode == "P" and "transparency" in img.info and mode in ("RGB", "L"):
            img = img.convert("RGBA")
        return img.convert(mode)
    if mode not in ("RGB", "L"):
        raise ValueError(f"arrays can be converted to 'RGB' or 'L', not {mode!r}")
    if kind == "hwc":
        hwc = img[:, :, None] if img.ndim == 2 else img
    else:
        hwc = img.transpose(1, 2, 0)  # work channels-last for both layouts
    c = hwc.shape[2]
    if c not in (1, 2, 3, 4):
        raise ValueError(f"cannot convert a {c}-channel image to {mode}")
    if mode == "RGB":
        out = hwc[:, :, :3] if c >= 3 else np.repeat(hwc[:, :, :1], 3, axis=2)
    elif c >= 3:
        luma = hwc[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if kind == "hwc":
            luma = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        out = luma[:, :, None]
    else:
        out = hwc[:, :, :1]
    if kind == "hwc":
        return np.ascontiguousarray(out[:, :, 0] if mode == "L" else out)
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=img.dtype)


# torchvision's rgb_to_grayscale weights for tensors (ITU-R 601-2 luma, rounded as there)
_GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _enhance(img, enhancer, factor: float, what: str):
    """Pillow's ``ImageEnhance`` on a PIL image or on the PIL image of a uint8 array."""
    if isinstance(img, Image.Image):
        if img.mode not in ("L", "RGB"):
            raise ValueError(f"{what}: expected an 'L' or 'RGB' image, got mode {img.mode!r} "
                             f"(put ConvertMode('RGB') first)")
        return getattr(ImageEnhance, enhancer)(img).enhance(factor)
    c = 1 if img.ndim == 2 else img.shape[2]
    if c not in (1, 3):
        raise ValueError(f"{what}: expected 1 or 3 channels, got {c}")
    pil = Image.fromarray(np.ascontiguousarray(img[:, :, 0] if img.ndim == 3 and c == 1
                                               else img))
    out = np.asarray(getattr(ImageEnhance, enhancer)(pil).enhance(factor))
    return out[:, :, None] if img.ndim == 3 and c == 1 else out


def _float_grey(img: np.ndarray, what: str) -> np.ndarray:
    """(1, H, W) grey plane of a floating 1- or 3-channel (C, H, W) array."""
    if img.shape[0] == 1:
        return img
    if img.shape[0] != 3:
        raise ValueError(f"{what}: expected 1 or 3 channels, got {img.shape[0]}")
    w = np.asarray(_GREY_WEIGHTS, dtype=img.dtype).reshape(3, 1, 1)
    return (img * w).sum(axis=0, keepdims=True)


def _blend(img: np.ndarray, other, factor: float) -> np.ndarray:
    """factor * img + (1 - factor) * other, clipped to [0, 1], in img's dtype."""
    out = factor * img + (1.0 - factor) * other
    return np.clip(out, 0.0, 1.0).astype(img.dtype, copy=False)


def adjust_brightness(img, factor: float):
    """Blend with a black image: 0 gives black, 1 the image, 2 twice as bright. PIL images
    and uint8 arrays use Pillow's ``ImageEnhance.Brightness`` (torchvision's PIL path);
    floating (C, H, W) arrays ``clip(factor * img, 0, 1)`` (its tensor path).

    >>> adjust_brightness(np.full((1, 1, 2), 0.25, np.float32), 2.0).ravel().tolist()
    [0.5, 0.5]
    """
    if _kind(img) == "chw":
        return _blend(img, 0.0, factor)
    return _enhance(img, "Brightness", factor, "adjust_brightness")


def adjust_contrast(img, factor: float):
    """Blend with the mean grey level of the whole image (torchvision's rule): 0 gives a
    flat grey image, 1 the image. PIL images and uint8 arrays use Pillow's
    ``ImageEnhance.Contrast`` (the mean of the "L" image, rounded to an int); floating
    (C, H, W) arrays blend with the mean of the luma 0.2989 R + 0.587 G + 0.114 B (of the
    one channel for grey images) and clip to [0, 1].

    >>> adjust_contrast(np.array([[[0.0, 1.0]]], np.float32), 0.5).ravel().tolist()
    [0.25, 0.75]
    """
    if _kind(img) == "chw":
        return _blend(img, _float_grey(img, "adjust_contrast").mean(), factor)
    return _enhance(img, "Contrast", factor, "adjust_contrast")


def adjust_saturation(img, factor: float):
    """Blend with the grey version of the image: 0 gives grey, 1 the image, 2 doubles the
    saturation. A 1-channel image is returned unchanged. PIL images and uint8 arrays use
    Pillow's ``ImageEnhance.Color``; floating (C, H, W) arrays blend with the luma
    0.2989 R + 0.587 G + 0.114 B and clip to [0, 1].

    >>> x = np.array([1.0, 0.0, 0.0], np.float32).reshape(3, 1, 1)
    >>> [round(v, 4) for v in adjust_saturation(x, 0.0).ravel().tolist()]
    [0.2989, 0.2989, 0.2989]
    """
    kind = _kind(img)
    if kind == "chw":
        if img.shape[0] == 1:
            return img
        return _blend(img, _float_grey(img, "adjust_saturation"), factor)
    if (kind == "pil" and img.mode == "L") or (kind == "hwc" and (
            img.ndim == 2 or img.shape[2] == 1)):
        return img
    return _enhance(img, "Color", factor, "adjust_saturation")


def to_array(img) -> np.ndarray:
    """float32 (C, H, W), C-contiguous. 8-bit images are divided by 255 (torchvision's
    ``ToTensor``); 16-bit ones by 65535; bilevel "1" images give 0 and 1; Pillow's "I" and
    "F" modes keep their values; palette images are first expanded to RGB(A); floating
    (C, H, W) arrays pass through as float32.

    >>> to_array(np.full((2, 3, 3), 255, dtype=np.uint8)).shape
    (3, 2, 3)
    """
    kind = _kind(img)
    if kind == "chw":
        return np.ascontiguousarray(img, dtype=np.float32)
    if kind == "pil":
        if img.mode in ("P", "PA"):
            img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info
                              else "RGB")
        arr = np.asarray(img)
    else:
        arr = img
    if arr.ndim == 2:
        arr = arr[:, :, None]
    out = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    if arr.dtype == np.uint8:
        out /= 255.0
    elif arr.dtype == np.uint16 or arr.dtype == np.dtype(">u2"):
        out /= 65535.0
    return out


def normalize(arr: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(arr - mean) / std per channel of a float (C, H, W) array, in float32 as torchvision.

    >>> normalize(np.ones((3, 1, 1), np.float32), (0.5,) * 3, (0.5,) * 3).ravel().tolist()
    [1.0, 1.0, 1.0]
    """
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 \
            or not np.issubdtype(arr.dtype, np.floating):
        what = (f"array of dtype {arr.dtype} and shape {arr.shape}"
                if isinstance(arr, np.ndarray) else type(arr).__name__)
        raise TypeError(f"Normalize expects a float (C, H, W) array (put ToArray() before "
                        f"it), got {what}")
    m = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
    c = arr.shape[0]
    if m.shape[0] not in (1, c) or s.shape[0] not in (1, c):
        hint = " (put ConvertMode('RGB') first)" if c == 1 else ""
        raise ValueError(f"Normalize: {m.shape[0]} means and {s.shape[0]} stds for an "
                         f"image with {c} channels{hint}")
    return np.ascontiguousarray((arr.astype(np.float32, copy=False) - m) / s)
