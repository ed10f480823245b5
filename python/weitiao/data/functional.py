"""The image operations behind the transforms, one function each, as torchvision's
``transforms.functional``: sizes, crop, resize, flip, mode conversion, to-array, normalise.

Three kinds of image are accepted everywhere:

- a ``PIL.Image.Image`` (what ImageFolder decodes);
- a uint8 NumPy array laid out (H, W) or (H, W, C), as Pillow and ``ToTensor`` read arrays;
- a floating NumPy array laid out (C, H, W), as torchvision's tensors (what ``ToArray``
  makes; (N, C, H, W) float32 datasets hand these out).

Geometric operations return the kind they were given. Resizing always goes through Pillow
(floating arrays channel by channel in Pillow's 32-bit float mode "F"), so a PIL image and
the same pixels as an array give the same result.

>>> import numpy as np
>>> img = np.zeros((4, 6, 3), dtype=np.uint8)
>>> image_size(crop(img, 1, 1, 2, 3))
(2, 3)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

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
