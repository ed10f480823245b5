"""Reading image files: the extensions ImageFolder accepts, decoding with Pillow into a
chosen mode, a cheap validity check, and the errors a file dataset raises.

>>> is_image_file("cats/Tabby.JPG")
True
"""
from __future__ import annotations

import os
import stat

from PIL import Image, UnidentifiedImageError

from .functional import convert_mode

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm",
                  ".tif", ".tiff")
CHANNEL_MODES = ("RGB", "L", None)


class ImageReadError(OSError):
    """An image file that Pillow cannot open or decode; the message names the file.

    >>> ImageReadError("x.png", "truncated").path
    'x.png'
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason


class SkippedSample(ImageReadError):
    """Raised by a dataset built with ``on_error="skip"`` when a file that passed the check
    at construction fails to decode. The file is recorded in ``dataset.skipped``;
    DataLoader leaves the sample out of its batch, so other indices do not move.

    >>> isinstance(SkippedSample("x.png", "truncated"), ImageReadError)
    True
    """


def is_image_file(path: str, extensions: tuple[str, ...] = IMG_EXTENSIONS) -> bool:
    """Whether ``path`` ends in one of ``extensions``, ignoring case (torchvision's test).

    >>> is_image_file("a/b.txt")
    False
    """
    return path.lower().endswith(tuple(e.lower() for e in extensions))


def check_channels(channels: str | None) -> str | None:
    """``channels`` if it is a mode file datasets convert to ("RGB", "L", None), else
    ValueError.

    >>> check_channels("L")
    'L'
    """
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be 'RGB', 'L' or None (keep the file's mode), got "
                         f"{channels!r}")
    return channels


def load_image(path: str, channels: str | None = "RGB") -> Image.Image:
    """Decode ``path`` fully and convert it to ``channels`` ("RGB", "L", or None to keep
    the file's mode). RGB conversion is ``Image.convert("RGB")``, as torchvision's
    ``pil_loader``: grey is repeated, palettes are looked up, alpha is dropped, CMYK goes
    through Pillow's conversion. Raises ImageReadError naming the file.

    >>> load_image("missing.png")
    Traceback (most recent call last):
    ...
    weitiao.data.image_files.ImageReadError: cannot read image missing.png: ...
    """
    try:
        _refuse_special(path)
        with open(path, "rb") as f:
            img = Image.open(f)
            _refuse_bomb(img)
            img.load()
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, ... for bad files
        raise ImageReadError(path, _reason(e)) from e
    if channels is None:
        return img
    return convert_mode(img, channels)


def verify_image(path: str) -> str | None:
    """None if ``path`` opens as an image and passes ``Image.verify`` (a structural check
    that reads no pixels: PNG chunk checksums, headers), else the reason. Files can still
    fail to decode later (a truncated JPEG passes verify).

    >>> verify_image(__file__) is not None  # a .py file
    True
    """
    try:
        _refuse_special(path)
        with Image.open(path) as img:
            _refuse_bomb(img)
            img.verify()
    except Exception as e:  # Pillow raises many kinds for broken files
        return _reason(e)
    return None


def _refuse_special(path: str) -> None:
    """Refuse a named pipe, socket or device before opening it: reading a pipe nobody
    writes to blocks forever."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError("not a regular file (a named pipe, socket or device)")


def _refuse_bomb(img: Image.Image) -> None:
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; a dataset image that large
    is a decompression bomb or a mistake, so it is refused before decoding. (Checked here,
    not by turning the warning into an error: warning filters are process-wide and the
    DataLoader decodes in threads.)"""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and img.width * img.height > limit:
        raise Image.DecompressionBombError(
            f"{img.width}x{img.height} pixels is over Pillow's MAX_IMAGE_PIXELS ({limit}): "
            f"a decompression bomb or a mistake")


def _reason(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not an image format Pillow can identify (empty, corrupt or not an image)"
    return f"{type(e).__name__}: {e}"
