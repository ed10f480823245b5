"""Read PyTorch ``.pth``/``.pt`` checkpoints without PyTorch and without running their code.

Two layouts exist (both read here; the unpickling itself is in ``torch_pickle``):

* zip, the default since torch 1.6: ``<archive>/data.pkl`` (the pickled object),
  ``<archive>/data/<key>`` (one member per storage, raw little-endian bytes),
  ``<archive>/byteorder`` (``little``/``big``, absent in old files), ``<archive>/version``
  and a few bookkeeping members. ``<archive>`` is any single folder name.
* legacy, ``torch.save(..., _use_new_zipfile_serialization=False)``: a run of pickles in
  one file - a magic number, the protocol version 1001, a sys-info dict, the object, then
  the sorted list of storage keys - followed, for each key in that order, by an 8-byte
  element count and the storage's raw bytes.

Every storage's declared size is checked against the bytes the file really holds before
any array is allocated.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import IO, Any

import numpy as np

from .errors import CheckpointError, describe, number
from .torch_pickle import StorageRef, materialize, unpickle
from .zipcheck import open_zip, read_member

_MAX_PICKLE_GROWTH = 4

__all__ = ["load_pth", "LEGACY_MAGIC_NUMBER"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def load_pth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a PyTorch checkpoint (zip or legacy format) as a dict holding NumPy arrays.

    Tensors become C-contiguous NumPy arrays of their own dtype (float16 stays float16;
    bfloat16, which NumPy lacks, becomes float32; ``num_batches_tracked`` is a 0-d int64
    array); ``nn.Parameter`` values become plain arrays; ``OrderedDict`` becomes ``dict``.
    Non-tensor values (an ``"epoch"`` int, optimizer settings) come back as they were.
    The top-level object is returned as is: use ``load_state_dict`` to unwrap
    ``{"state_dict": ...}`` checkpoints and strip ``module.`` prefixes.

    Only tensor state dicts are accepted: a pickled global other than the few torch
    needs for tensors (``os.system``, a model class...) raises CheckpointError naming
    it, before anything is called. Truncated or corrupted files raise CheckpointError.

    >>> sd = load_pth("resnet18-f37072fd.pth")            # doctest: +SKIP
    >>> sd["conv1.weight"].shape, sd["conv1.weight"].dtype  # doctest: +SKIP
    ((64, 3, 7, 7), dtype('float32'))
    """
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        obj = _load_zip(path)
    elif head[257:262] == b"ustar":
        raise CheckpointError(
            f"{describe(path)} uses the tar checkpoint format of torch < 0.4, which is not "
            "supported: load it with an old torch and save its state_dict() again"
        )
    elif head[:1] == b"\x80":
        obj = _load_legacy(path)
    else:
        raise CheckpointError(
            f"{describe(path)} is not a PyTorch checkpoint: it is neither a zip archive "
            f"nor a legacy torch pickle (starts with {head[:8]!r})"
        )
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{describe(path)} holds a {type(obj).__name__}, not a dict of tensors"
        )
    return obj


def _find_archive_root(path: str | os.PathLike[str], names: list[str]) -> str:
    """The ``<archive>`` folder that holds ``data.pkl``, refusing TorchScript archives."""
    roots = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if any(n.count("/") >= 1 and (n.split("/")[1] in ("code", "constants.pkl")) for n in names):
        raise CheckpointError(
            f"{describe(path)} is a TorchScript archive (torch.jit.save), not a checkpoint: "
            "save the model's state_dict() with torch.save instead"
        )
    if len(roots) != 1:
        found = "no" if not roots else "several"
        raise CheckpointError(
            f"{describe(path)} is a zip archive but not a PyTorch checkpoint: "
            f"{found} <archive>/data.pkl member(s) found"
        )
    return roots[0]


def _load_zip(path: str | os.PathLike[str]) -> Any:
    with open_zip(path, "PyTorch checkpoint") as (archive, archive_size):
        root = _find_archive_root(path, archive.namelist())

        big_endian = False
        try:
            order_info = archive.getinfo(f"{root}/byteorder")
        except KeyError:
            order_info = None  # files from before torch 1.10 are little-endian
        if order_info is not None:
            if order_info.file_size > 16:
                raise CheckpointError(f"{describe(path)} is corrupted: oversized byteorder record")
            order = read_member(path, archive, order_info, archive_size, "the byteorder record")
            if order not in (b"little", b"big"):
                raise CheckpointError(f"{describe(path)} has an unknown byte order {order!r}")
            big_endian = order == b"big"

        pickle_info = archive.getinfo(f"{root}/data.pkl")
        # torch stores data.pkl uncompressed and it is small next to the tensors; a deflated
        # one may only be a few times the file, so a pickle bomb is refused before inflating.
        if pickle_info.file_size > _MAX_PICKLE_GROWTH * archive_size + (1 << 20):
            raise CheckpointError(
                f"{describe(path)}: data.pkl would inflate to {pickle_info.file_size} bytes from "
                f"a {archive_size}-byte file; refusing a compressed pickle that large"
            )
        pickled = read_member(path, archive, pickle_info, archive_size, "data.pkl")
        obj, unpickler = unpickle(io.BytesIO(pickled), path, "data.pkl")

        # Check every storage's size before reading (and allocating) any of them.
        members: dict[str, zipfile.ZipInfo] = {}
        for key, storage in unpickler.storages.items():
            name = f"{root}/data/{key}"
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise CheckpointError(
                    f"{describe(path)} is corrupted: storage {key!r} has no member {name!r}"
                ) from None
            _check_storage_size(path, storage, info.file_size, f"its member {name!r} holds")
            members[key] = info
        buffers = {
            key: np.frombuffer(
                read_member(path, archive, info, archive_size, f"storage {info.filename!r}"),
                dtype=np.uint8,
            )
            for key, info in members.items()
        }
    return materialize(obj, buffers, big_endian, path)


def _check_storage_size(path: str | os.PathLike[str], storage: StorageRef, nbytes: int,
                        holds: str) -> None:
    expected = storage.numel * storage.dtype.itemsize
    if expected != nbytes:
        raise CheckpointError(
            f"{describe(path)} is corrupted: storage {storage.key!r} declares "
            f"{number(storage.numel)} {storage.dtype.name} elements ({number(expected)} bytes) "
            f"but {holds} {nbytes} bytes"
        )


class _ClampedReader:
    """A read-only view of a file that never asks the OS for more than remains.

    ``BufferedReader.read(n)`` allocates ``n`` bytes up front; a pickle length field
    claiming terabytes must not turn into a terabyte allocation.
    """

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._size = size

    def remaining(self) -> int:
        return max(self._size - self._f.tell(), 0)

    def read(self, n: int | None = -1) -> bytes:
        left = self.remaining()
        return self._f.read(left if n is None or n < 0 or n > left else n)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(limit)

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)


def _load_legacy(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as raw:
        reader = _ClampedReader(raw, os.fstat(raw.fileno()).st_size)
        magic, _ = unpickle(reader, path, "the magic number")
        if magic != LEGACY_MAGIC_NUMBER:
            raise CheckpointError(
                f"{describe(path)} is not a PyTorch checkpoint: it is a pickle, but without "
                "torch's magic number"
            )
        version, _ = unpickle(reader, path, "the protocol version")
        if version != LEGACY_PROTOCOL_VERSION:
            raise CheckpointError(
                f"{describe(path)} has unsupported legacy protocol version {version!r}"
            )
        sys_info, _ = unpickle(reader, path, "the sys-info record")
        big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
        obj, unpickler = unpickle(reader, path, "the pickled object")
        keys, _ = unpickle(reader, path, "the storage key list")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError(f"{describe(path)} is corrupted: bad storage key list")
        if sorted(set(keys)) != sorted(unpickler.storages) or len(keys) != len(set(keys)):
            raise CheckpointError(
                f"{describe(path)} is corrupted: the storage key list does not match the "
                "storages the pickle refers to"
            )

        buffers: dict[str, np.ndarray] = {}
        count_format = ">q" if big_endian else "<q"
        for key in keys:
            storage = unpickler.storages[key]
            header = reader.read(8)
            if len(header) != 8:
                raise CheckpointError(
                    f"{describe(path)} is truncated: storage {key!r} is missing"
                )
            (count,) = struct.unpack(count_format, header)
            if count != storage.numel:
                raise CheckpointError(
                    f"{describe(path)} is corrupted: storage {key!r} is declared with "
                    f"{number(storage.numel)} elements but its data header says {number(count)}"
                )
            nbytes = storage.numel * storage.dtype.itemsize
            if nbytes > reader.remaining():
                raise CheckpointError(
                    f"{describe(path)} is truncated or corrupted: storage {key!r} declares "
                    f"{number(storage.numel)} {storage.dtype.name} elements ({number(nbytes)} bytes) but only "
                    f"{reader.remaining()} bytes remain in the file"
                )
            data = reader.read(nbytes)
            if len(data) != nbytes:
                raise CheckpointError(
                    f"{describe(path)} is truncated: storage {key!r} has {len(data)} of "
                    f"{nbytes} bytes"
                )
            buffers[key] = np.frombuffer(data, dtype=np.uint8)
    return materialize(obj, buffers, big_endian, path)
