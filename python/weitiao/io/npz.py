"""Read and write state dicts as NumPy ``.npz`` archives, never unpickling anything.

An ``.npz`` is a zip of ``<name>.npy`` members. Writing goes member by member through
``numpy.lib.format.write_array`` (as ``np.savez`` does, but without ``savez``'s keyword
arguments, so a tensor may be called ``file``). Reading parses each member's header
first and checks its shape against the member's size before allocating, and refuses
object arrays (which would need pickle).
"""
from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from .arrays import savable_arrays
from .atomic import atomic_write
from .errors import CheckpointError, describe
from .zipcheck import check_member_size, open_zip, zip_errors

__all__ = ["load_npz", "save_npz"]


def save_npz(tensors: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``tensors`` (name -> array) to ``path`` as an uncompressed ``.npz``, atomically.

    ``np.load(path)`` reads the result. Object arrays raise CheckpointError. The file is
    written through ``atomic_write``: an existing file is replaced only when the new
    one is complete.

    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> save_npz({"fc.weight": np.ones((2, 3), np.float32)}, path)
    >>> load_npz(path)["fc.weight"].shape
    (2, 3)
    """
    arrays = savable_arrays(tensors, path)
    for key in arrays:
        if key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise ValueError(f"cannot save {key!r} to {describe(path)}: not a safe member name")
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, array in arrays.items():
                with archive.open(key + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)


def _read_npy(fp: IO[bytes], info: zipfile.ZipInfo, path: str | os.PathLike[str],
              key: str) -> np.ndarray:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise CheckpointError(
            f"{describe(path)}: array {key!r} uses .npy format version {version}, which is "
            "only needed for structured arrays and is not supported"
        )
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields:
        raise CheckpointError(
            f"{describe(path)}: array {key!r} has dtype {dtype}; object, string and "
            "structured arrays are refused (object arrays would need pickle)"
        )
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    available = info.file_size - fp.tell()
    if nbytes != available:
        raise CheckpointError(
            f"{describe(path)} is corrupted: array {key!r} declares shape {shape} of "
            f"{dtype} ({nbytes} bytes) but its member holds {available} bytes of data"
        )
    flat = np.empty(count, dtype=dtype)
    view = memoryview(flat).cast("B")
    filled = 0
    while filled < nbytes:
        got = fp.readinto(view[filled:])
        if not got:
            raise CheckpointError(f"{describe(path)} is truncated: array {key!r} is incomplete")
        filled += got
    if fp.read(1):  # also makes zipfile reach the member's end and check its CRC
        raise CheckpointError(f"{describe(path)} is corrupted: array {key!r} has trailing bytes")
    if fortran_order:
        array = np.asarray(flat.reshape(shape[::-1]).T, order="C")
    else:
        array = flat.reshape(shape)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load an ``.npz`` archive as a dict of writeable, C-contiguous NumPy arrays.

    Nothing is unpickled: an object array raises CheckpointError, and so does a member
    whose header claims more data than it holds, a bad CRC or a truncated file.

    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> np.savez(path, bias=np.zeros(3, np.float32))
    >>> load_npz(path)
    {'bias': array([0., 0., 0.], dtype=float32)}
    """
    tensors: dict[str, np.ndarray] = {}
    with open_zip(path, ".npz archive") as (archive, archive_size):
        for info in archive.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise CheckpointError(
                    f"{describe(path)} is not an .npz of arrays: member {info.filename!r} "
                    "is not a .npy file"
                )
            key = info.filename[: -len(".npy")]
            check_member_size(path, info, archive_size)
            with zip_errors(path, f"array {key!r}"), archive.open(info) as fp:
                tensors[key] = _read_npy(fp, info, path, key)
    return tensors
