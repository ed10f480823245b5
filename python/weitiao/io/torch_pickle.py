"""A restricted unpickler for the pickles inside PyTorch checkpoints.

``torch.save`` pickles a state dict as an ``OrderedDict`` whose values are built by calls
to ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``; the storages
are not in the pickle but referenced through ``persistent_load`` as
``('storage', torch.FloatStorage, key, location, numel[, view_metadata])``. A pickle can
name any importable callable, so an ordinary ``pickle.load`` of a downloaded file runs
whatever the file says (``os.system``...). This unpickler resolves only the handful of
globals a tensor state dict needs, each to a harmless stand-in defined here, and refuses
every other global with a CheckpointError that names it.

Loading happens in two steps because the legacy format stores tensor bytes *after* the
pickle: unpickling yields ``TensorRef`` placeholders (storage, offset, size, stride,
dtype), and ``materialize`` later swaps them for NumPy arrays once the storage bytes are
in memory.
"""
from __future__ import annotations

import _compat_pickle
import collections
import math
import os
import pickle
import pickletools
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import CheckpointError, describe, number

__all__ = ["TorchUnpickler", "TensorRef", "StorageRef", "unpickle", "materialize"]

# A view whose strides repeat elements (torch's expand()) can be larger than its storage;
# copying it is allowed up to this size, so a tiny file cannot ask for a huge array.
MAX_EXPANDED_BYTES = 256 * 2**20

# torch.<Name>Storage -> the dtype name its elements have.
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
# torch.<dtype> globals (and their aliases) -> the dtype name.
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32",
    "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128",
}


class _StandIn:
    """Base of the objects the unpickler hands out for admitted globals.

    They refuse pickle's BUILD (``__setstate__``), so a file cannot set attributes on
    them, and they have no ``__dict__``.
    """

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise TypeError(f"{self!r} does not accept pickled state")


class TorchDType(_StandIn):
    """Stand-in for a ``torch.<dtype>`` global: its torch name and NumPy storage dtype.

    bfloat16 has no NumPy dtype: its elements are read as uint16 and widened to float32
    (exactly: a bfloat16 is the top half of a float32).
    """

    __slots__ = ("name", "numpy")

    def __init__(self, name: str) -> None:
        self.name = name
        self.numpy = np.dtype("uint16" if name == "bfloat16" else name)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class StorageType(_StandIn):
    """Stand-in for ``torch.FloatStorage`` and friends (and ``torch.UntypedStorage``)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: TorchDType) -> None:
        self.name = name
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Rebuild(_StandIn):
    """Stand-in for an admitted ``torch._utils`` function: calls a checked replacement."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Any) -> None:
        self.name = name
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return f"torch._utils.{self.name}"


class TensorType(_StandIn):
    """Stand-in for ``torch.Tensor`` as named by ``_rebuild_from_type_v2`` (a tensor
    that carried Python attributes); the attributes themselves are dropped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "torch.Tensor"


@dataclass(frozen=True, eq=False)
class StorageRef:
    """A storage the pickle refers to: ``key`` names its bytes in the file.

    ``numel`` counts elements of ``dtype`` in the whole (root) storage; ``view`` is
    ``(offset, numel)`` in elements for the legacy format's storage views, else None.
    """

    key: str
    dtype: TorchDType
    numel: int
    view: tuple[int, int] | None = None


@dataclass(frozen=True, eq=False)
class TensorRef:
    """A tensor to be cut from a storage once its bytes are loaded (sizes in elements)."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: TorchDType


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class TorchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that admits only what a tensor state dict needs.

    Admitted globals: ``collections.OrderedDict``; ``torch._utils._rebuild_tensor``,
    ``_rebuild_tensor_v2``, ``_rebuild_tensor_v3``, ``_rebuild_parameter`` and
    ``_rebuild_parameter_with_state``; ``torch._tensor._rebuild_from_type_v2`` with
    ``torch.Tensor``; the ``torch.<Type>Storage`` classes and ``torch.UntypedStorage``;
    the ``torch.<dtype>`` objects. Each maps to a stand-in from
    this module. Every storage the pickle mentions is recorded in ``self.storages``
    (key -> StorageRef of the root storage).

    >>> import io, pickle
    >>> TorchUnpickler(io.BytesIO(pickle.dumps({"epoch": 3})), "w.pth").load()
    {'epoch': 3}
    """

    def __init__(self, file: IO[bytes], path: str | os.PathLike[str]) -> None:
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storages: dict[str, StorageRef] = {}
        dtypes = {name: TorchDType(name) for name in set(_TORCH_DTYPES.values())}
        allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor"): _Rebuild("_rebuild_tensor", self._rebuild_tensor),
            ("torch._utils", "_rebuild_tensor_v2"): _Rebuild("_rebuild_tensor_v2", self._rebuild_tensor_v2),
            ("torch._utils", "_rebuild_tensor_v3"): _Rebuild("_rebuild_tensor_v3", self._rebuild_tensor_v3),
            ("torch._utils", "_rebuild_parameter"): _Rebuild("_rebuild_parameter", self._rebuild_parameter),
            ("torch._utils", "_rebuild_parameter_with_state"):
                _Rebuild("_rebuild_parameter_with_state", self._rebuild_parameter),
            ("torch._tensor", "_rebuild_from_type_v2"):
                _Rebuild("_rebuild_from_type_v2", self._rebuild_from_type_v2),
            ("torch", "Tensor"): TensorType(),
            ("torch._tensor", "Tensor"): TensorType(),
        }
        for storage, dtype in _STORAGE_DTYPES.items():
            allowed["torch", storage] = StorageType(storage, dtypes[dtype])
        untyped = StorageType("UntypedStorage", dtypes["uint8"])
        allowed["torch", "UntypedStorage"] = untyped
        allowed["torch.storage", "UntypedStorage"] = untyped
        for alias, dtype in _TORCH_DTYPES.items():
            allowed["torch", alias] = dtypes[dtype]
        self._allowed = allowed

    # -- pickle hooks ---------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            # Name it as Python 3 would (protocol <= 2 pickles say __builtin__.eval).
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            hint = ""
            if module.startswith(("torch.nn", "torchvision", "__torch__", "__main__")):
                hint = " (save model.state_dict() with torch.save, not the model object)"
            raise CheckpointError(
                f"refusing to load global {module}.{name} from {describe(self.path)}: "
                f"only tensor state dicts are allowed{hint}"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise self._bad(f"unexpected persistent id {_short(pid)}")
        kind = pid[0].decode("ascii", "replace") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise self._bad("it holds a pickled nn.Module, not a state dict "
                            "(save model.state_dict() instead)")
        if kind != "storage" or len(pid) not in (5, 6):
            raise self._bad(f"unexpected persistent id {_short(pid)}")
        storage_type, key, location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, StorageType):
            raise self._bad(f"storage type {_short(storage_type)} is not a torch storage class")
        if not isinstance(key, str) or not (0 < len(key) <= 64) or key in (".", "..") or not all(
            (c.isascii() and c.isalnum()) or c in "_-." for c in key
        ):
            raise self._bad(f"invalid storage key {_short(key)}")
        if not isinstance(location, (str, bytes)):
            raise self._bad(f"invalid storage location {_short(location)}")
        if not _is_int(numel) or numel < 0:
            raise self._bad(f"storage {key!r} has invalid element count {_short(numel)}")
        root = self.storages.get(key)
        if root is None:
            root = self.storages[key] = StorageRef(key, storage_type.dtype, numel)
        elif root.dtype.name != storage_type.dtype.name or root.numel != numel:
            raise self._bad(f"storage {key!r} is declared twice with different types or sizes")
        if view is None:
            return root
        if (not isinstance(view, tuple) or len(view) != 3 or not isinstance(view[0], str)
                or not all(_is_int(v) and v >= 0 for v in view[1:])):
            raise self._bad(f"invalid storage view {_short(view)}")
        _, offset, size = view
        if offset + size > numel:
            raise self._bad(f"storage view {number(offset)}+{number(size)} exceeds storage {key!r} of "
                f"{number(numel)} elements")
        return StorageRef(key, root.dtype, numel, (offset, size))

    # -- stand-ins for torch._utils ----------------------------------------------------
    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> TensorRef:
        if not isinstance(storage, StorageRef):
            raise self._bad(f"tensor storage is {_short(storage)}, not a storage reference")
        return self._tensor(storage, offset, size, stride, storage.dtype)

    def _rebuild_tensor_v2(self, storage: Any, offset: Any, size: Any, stride: Any,
                           requires_grad: Any = False, backward_hooks: Any = None,
                           metadata: Any = None) -> TensorRef:
        return self._rebuild_tensor(storage, offset, size, stride)

    def _rebuild_tensor_v3(self, storage: Any, offset: Any, size: Any, stride: Any,
                           requires_grad: Any, backward_hooks: Any, dtype: Any,
                           metadata: Any = None) -> TensorRef:
        # v3 carries the dtype itself; the storage is untyped (bytes).
        if not isinstance(storage, StorageRef):
            raise self._bad(f"tensor storage is {_short(storage)}, not a storage reference")
        if not isinstance(dtype, TorchDType):
            raise self._bad(f"tensor dtype {_short(dtype)} is not a supported torch dtype")
        return self._tensor(storage, offset, size, stride, dtype)

    def _rebuild_parameter(self, data: Any, requires_grad: Any = False,
                           backward_hooks: Any = None, state: Any = None) -> TensorRef:
        if not isinstance(data, TensorRef):
            raise self._bad(f"parameter data is {_short(data)}, not a tensor")
        return data

    def _rebuild_from_type_v2(self, func: Any, new_type: Any, args: Any, state: Any) -> TensorRef:
        # torch writes this for a tensor with Python attributes: func(*args) rebuilds it.
        if not isinstance(func, _Rebuild) or not isinstance(new_type, TensorType) or not isinstance(args, tuple):
            raise self._bad(f"unsupported tensor rebuild {_short((func, new_type))}")
        result = func(*args)
        if not isinstance(result, TensorRef):
            raise self._bad(f"tensor rebuild produced {_short(result)}, not a tensor")
        return result

    # -- helpers -------------------------------------------------------------------------
    def _tensor(self, storage: StorageRef, offset: Any, size: Any, stride: Any,
                dtype: TorchDType) -> TensorRef:
        if not _is_int(offset) or offset < 0:
            raise self._bad(f"invalid tensor storage offset {_short(offset)}")
        for what, dims in (("size", size), ("stride", stride)):
            if (not isinstance(dims, (tuple, list)) or len(dims) > 64
                    or not all(_is_int(d) and d >= 0 for d in dims)):
                raise self._bad(f"invalid tensor {what} {_short(dims)}")
        if len(size) != len(stride):
            raise self._bad(f"tensor size {number(tuple(size))} and stride {number(tuple(stride))} differ in "
                f"length")
        return TensorRef(storage, offset, tuple(size), tuple(stride), dtype)

    def _bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"{describe(self.path)} is not a valid PyTorch checkpoint: {what}")


def _short(x: object) -> str:
    return number(x)


def unpickle(stream: IO[bytes], path: str | os.PathLike[str], what: str) -> tuple[Any, TorchUnpickler]:
    """Load one pickle from ``stream`` with TorchUnpickler; return it and the unpickler.

    The opcodes are scanned first (pickletools), so a length field that claims more
    bytes than the stream holds is caught before the C unpickler allocates for it.
    ``what`` describes the pickle in error messages ("the state dict pickle").
    """
    start = stream.tell()
    try:
        for _ in pickletools.genops(stream):
            pass
    except Exception as e:  # ValueError/EOFError from a truncated or garbled pickle
        raise CheckpointError(
            f"{describe(path)} is corrupted or truncated: {what} cannot be read ({e})"
        ) from e
    stream.seek(start)
    unpickler = TorchUnpickler(stream, path)
    try:
        obj = unpickler.load()
    except CheckpointError:
        raise
    except RecursionError as e:
        raise CheckpointError(f"{describe(path)}: {what} is nested too deeply") from e
    except Exception as e:  # UnpicklingError, TypeError from a bad call, MemoryError...
        raise CheckpointError(
            f"{describe(path)} is corrupted: {what} cannot be unpickled "
            f"({type(e).__name__}: {e})"
        ) from e
    return obj, unpickler


def _tensor_array(ref: TensorRef, buffers: dict[str, np.ndarray], big_endian: bool,
                  path: str | os.PathLike[str], where: str, expanded: list[int]) -> np.ndarray:
    """Copy one tensor out of its storage bytes into a C-contiguous native array.
    ``expanded`` holds the bytes that earlier tensors of the file already made by repeating
    storage elements (zero strides); the file's total may not pass MAX_EXPANDED_BYTES."""
    storage = ref.storage
    buf = buffers[storage.key]  # uint8, numel * itemsize bytes, checked by the reader
    base, limit = 0, len(buf)
    if storage.view is not None:
        itemsize = storage.dtype.itemsize
        base, limit = storage.view[0] * itemsize, (storage.view[0] + storage.view[1]) * itemsize
    dtype = ref.dtype.numpy.newbyteorder(">" if big_endian else "<")
    itemsize = dtype.itemsize
    available = (limit - base) // itemsize  # whole elements of ref.dtype in the storage

    count = math.prod(ref.size)
    if count == 0:
        out = np.zeros(ref.size, dtype=ref.dtype.numpy)
    else:
        span = 1 + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if ref.offset + span > available:
            raise CheckpointError(
                f"{describe(path)} is corrupted: tensor {where} (size {number(ref.size)}, stride "
                f"{number(ref.stride)}, offset {number(ref.offset)}) reaches past the end of its storage "
                f"of {available} elements"
            )
        if count > available:
            expanded[0] += count * itemsize
            if expanded[0] > MAX_EXPANDED_BYTES:
                raise CheckpointError(
                    f"{describe(path)}: tensor {where} repeats its storage's elements, which "
                    f"brings the file's tensors to {number(expanded[0])} bytes beyond their "
                    f"storages (over the {MAX_EXPANDED_BYTES}-byte limit)"
                )
        start = base + ref.offset * itemsize
        elements = buf[start:start + span * itemsize].view(dtype)
        strided = np.lib.stride_tricks.as_strided(
            elements, shape=ref.size, strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
        out = np.array(strided, dtype=ref.dtype.numpy, order="C")
    if ref.dtype.name == "bfloat16":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def materialize(obj: Any, buffers: dict[str, np.ndarray], big_endian: bool,
                path: str | os.PathLike[str]) -> Any:
    """Replace the placeholders in an unpickled object with NumPy arrays.

    ``buffers`` maps each storage key to its bytes (a uint8 array). TensorRefs become
    C-contiguous, writeable arrays of the tensor's dtype (bfloat16 becomes float32);
    OrderedDicts become dicts; torch dtypes become NumPy dtypes; other stand-ins become
    their names. Shared and cyclic containers are handled once each.
    """
    memo: dict[int, Any] = {}
    expanded = [0]

    def walk(x: Any, where: str) -> Any:
        if x is None or isinstance(x, (str, bytes, int, float, complex)):
            return x
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, TensorRef):
            result: Any = _tensor_array(x, buffers, big_endian, path, where, expanded)
        elif isinstance(x, StorageRef):  # a bare storage: its elements as a 1-D array
            n = x.view[1] if x.view else x.numel
            ref = TensorRef(x, 0, (n,), (1,), x.dtype)
            result = _tensor_array(ref, buffers, big_endian, path, where, expanded)
        elif isinstance(x, dict):
            result = {}
            memo[id(x)] = result
            for k, v in x.items():
                key = walk(k, where)
                try:
                    result[key] = walk(v, f"{where}[{k!r}]" if where else repr(k))
                except TypeError as e:  # a tensor used as a dict key
                    raise CheckpointError(f"{describe(path)}: unusable dict key {_short(k)}") from e
        elif isinstance(x, list):
            result = []
            memo[id(x)] = result
            result.extend(walk(v, f"{where}[{i}]") for i, v in enumerate(x))
        elif isinstance(x, tuple):
            result = tuple(walk(v, f"{where}[{i}]") for i, v in enumerate(x))
        elif isinstance(x, (set, frozenset)):
            try:
                result = type(x)(walk(v, where) for v in x)
            except TypeError as e:
                raise CheckpointError(f"{describe(path)}: a set holds unhashable values") from e
        elif isinstance(x, TorchDType):
            result = x.name if x.name == "bfloat16" else x.numpy
        elif isinstance(x, _StandIn):
            result = repr(x)
        else:
            result = x
        memo[id(x)] = result
        return result

    try:
        return walk(obj, "")
    except RecursionError as e:
        raise CheckpointError(f"{describe(path)}: the checkpoint is nested too deeply") from e
