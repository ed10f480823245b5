"""Broken and hostile image files for an ImageFolder (tests/test_broken_images.py).

``build(root)`` writes two class folders mixing good images with broken ones and returns
``(good, broken)``: lists of paths. ``bomb(path)`` writes a decompression bomb. Everything is
made here from a few bytes or a tiny Pillow image, so no image files are committed.

Run as a script to write them to a folder: ``python tests/hostile/images.py OUTDIR``.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A greyscale PNG declaring ``width`` x ``height`` whose IDAT holds ``rows`` rows of
    zeros (all of them when None), compressed as they stream, so a huge image costs little
    memory to write. With fewer rows the compressed stream is left unfinished: a finished
    one makes Pillow fill the missing rows with zeros without a word."""
    c = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    parts = [c.compress(row) for _ in range(height if rows is None else rows)]
    parts.append(c.flush() if rows is None else c.flush(zlib.Z_SYNC_FLUSH))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def _pillow(fmt: str, size=(24, 20), mode="RGB", seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(_pillow("JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_declaring(width: int, height: int) -> bytes:
    data = bytearray(_pillow("GIF", mode="L"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    desc = data.find(b"\x2c")  # image descriptor: left, top, width, height
    data[desc + 5:desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(_pillow("BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def build(root: str) -> tuple[list[str], list[str]]:
    """Write class folders ``a`` and ``b`` under ``root``; return (good paths, broken paths)."""
    good, broken = [], []

    def write(rel: str, content: bytes, ok: bool) -> None:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        (good if ok else broken).append(path)

    jpeg = _pillow("JPEG", size=(64, 48), seed=1)
    png_ok = _pillow("PNG", seed=2)
    write("a/good.png", png_ok, True)
    write("a/good.jpg", jpeg, True)
    write("b/good.png", _pillow("PNG", seed=3), True)
    write("b/png_named.jpg", _pillow("PNG", seed=4), True)  # Pillow reads content, not names
    write("a/truncated.jpg", jpeg[: len(jpeg) * 6 // 10], False)
    write("a/zero_bytes.png", b"", False)
    write("a/text_named.jpg", b"this is not an image\n" * 20, False)
    write("a/random_bytes.webp", np.random.default_rng(5).bytes(4096), False)
    write("b/truncated.png", png_ok[: len(png_ok) // 2], False)
    corrupt = bytearray(png_ok)
    idat = corrupt.find(b"IDAT")
    corrupt[idat + 10] ^= 0xFF  # flips a byte of the compressed pixels: the chunk CRC fails
    write("b/bad_crc.png", bytes(corrupt), False)
    write("b/huge_header.png", png(65535, 65535, rows=1), False)
    write("b/huge_header.jpg", _jpeg_declaring(65500, 65500), False)
    write("b/huge_header.gif", _gif_declaring(65535, 65535), False)
    write("a/huge_header.bmp", _bmp_declaring(40000, 40000), False)
    write("a/header_only.png", png(64, 64)[:33], False)  # signature and IHDR, nothing else
    # 81 M pixels, under Pillow's warning limit, but with one row of data: Pillow allocates
    # the image (81 MB) before it finds the data missing
    write("b/big_but_one_row.png", png(9000, 9000, rows=1), False)
    return good, broken


def bomb(path: str, side: int = 9500) -> None:
    """A greyscale PNG of ``side`` x ``side`` zeros: about 90 KB on disk, 90 million pixels,
    just above Pillow's MAX_IMAGE_PIXELS (89.5 M), where it only warns (it refuses at twice
    that)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png(side, side))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "broken-images"
    ok, bad = build(out)
    bomb(os.path.join(out, "bomb", "bomb.png"))
    for p in ok + bad:
        print(f"{'good  ' if p in ok else 'broken'} {os.path.getsize(p):>8} B  {p}")
