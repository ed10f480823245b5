"""Build PyTorch-format checkpoint files by hand, without torch, for the io tests.

``dumps`` writes protocol-2 pickle opcodes for a tiny object language (``Global``,
``Call``, ``PersId`` plus plain tuples/lists/dicts/str/int), so a test can state exactly
what a checkpoint's pickle says - including things torch would never write (a storage
claiming a terabyte, a tensor reaching past its storage). ``write_zip`` and
``write_legacy`` wrap such a pickle and raw storage bytes in the two container layouts
described in ``weitiao/io/pth.py``.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class Global:
    """A ``GLOBAL module name`` opcode: what ``find_class`` is asked for."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)`` through the REDUCE opcode."""

    func: Any
    args: tuple


@dataclass(frozen=True)
class Build:
    """``obj`` followed by BUILD with ``state`` (pickle's ``__setstate__`` step)."""

    obj: Any
    state: Any


@dataclass(frozen=True)
class PersId:
    """A persistent id (BINPERSID): how torch pickles refer to storages."""

    value: Any


def _emit(obj: Any) -> bytes:
    if isinstance(obj, Global):
        return b"c" + obj.module.encode() + b"\n" + obj.name.encode() + b"\n"
    if isinstance(obj, Call):
        return _emit(obj.func) + _emit(tuple(obj.args)) + b"R"
    if isinstance(obj, Build):
        return _emit(obj.obj) + _emit(obj.state) + b"b"
    if isinstance(obj, PersId):
        return _emit(obj.value) + b"Q"
    if isinstance(obj, tuple):
        return b"(" + b"".join(_emit(x) for x in obj) + b"t"
    if isinstance(obj, list):
        return b"](" + b"".join(_emit(x) for x in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_emit(k) + _emit(v) for k, v in obj.items()) + b"u"
    # str, int, float, bool, None: let pickle write them (memo PUTs are harmless here).
    return pickle.dumps(obj, protocol=2)[2:-1]


def dumps(obj: Any) -> bytes:
    """A complete protocol-2 pickle of ``obj``."""
    return b"\x80\x02" + _emit(obj) + b"."


def storage(storage_type: str, key: str, numel: int, *, legacy: bool = False,
            view: tuple | None = None) -> PersId:
    """The persistent id torch writes for a storage (legacy ids carry a 6th field)."""
    pid = ("storage", Global("torch", storage_type), key, "cpu", numel)
    return PersId(pid + (view,) if legacy else pid)


def tensor(pid: PersId, offset: int, size: tuple, stride: tuple) -> Call:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
    hooks = Call(Global("collections", "OrderedDict"), ())
    return Call(Global("torch._utils", "_rebuild_tensor_v2"), (pid, offset, size, stride, False, hooks))


def write_zip(path: str, pickled: bytes, storages: dict[str, bytes], *, root: str = "archive",
              byteorder: bytes | None = b"little", extra: dict[str, bytes] | None = None) -> None:
    """A torch >= 1.6 style zip: ``root/data.pkl``, ``root/data/<key>``, ``root/version``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", pickled)
        if byteorder is not None:
            z.writestr(f"{root}/byteorder", byteorder)
        for key, data in storages.items():
            z.writestr(f"{root}/data/{key}", data)
        z.writestr(f"{root}/version", b"3\n")
        for name, data in (extra or {}).items():
            z.writestr(name, data)


def legacy_bytes(pickled: bytes, storages: list[tuple[str, int, bytes]]) -> bytes:
    """The legacy layout: magic, protocol 1001, sys info, object pickle, sorted key list,
    then per key an 8-byte little-endian element count and the raw bytes."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps(sys_info, protocol=2), pickled,
             pickle.dumps([key for key, _, _ in storages], protocol=2)]
    for _, count, data in storages:
        parts.append(struct.pack("<q", count) + data)
    return b"".join(parts)


def write_legacy(path: str, pickled: bytes, storages: list[tuple[str, int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.write(legacy_bytes(pickled, storages))
