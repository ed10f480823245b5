"""Careful zip reading shared by the .pth (torch >= 1.6) and .npz readers.

Both formats are zip archives whose directory an attacker (or a disk error) controls. We
never extract to disk, but we still refuse member names that would escape a directory,
check every member's declared size against the archive's real size before allocating,
and turn every zipfile/zlib failure (bad CRC, truncation) into a CheckpointError that
names the file.
"""
from __future__ import annotations

import contextlib
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator

from .errors import CheckpointError, describe

__all__ = ["open_zip", "read_member", "zip_errors", "check_member_size"]

# Deflate cannot expand by more than about 1032:1; a member claiming more is lying.
_MAX_DEFLATE_RATIO = 1032
# Every failure zipfile and zlib raise for damaged data.
# (RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.)
_ZIP_FAILURES = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
                 NotImplementedError, RuntimeError, OSError, ValueError)


@contextlib.contextmanager
def zip_errors(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn zip/zlib/IO failures inside the block into a CheckpointError about ``what``."""
    try:
        yield
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except _ZIP_FAILURES as e:
        raise CheckpointError(
            f"{describe(path)} is corrupted or truncated: reading {what} failed ({e})"
        ) from e


def _unsafe_name(name: str) -> bool:
    """True for member names that are absolute or climb out of the archive's folder."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return True
    if len(name) >= 2 and name[1] == ":":  # a Windows drive letter, C:...
        return True
    return any(part == ".." for part in name.split("/"))


@contextlib.contextmanager
def open_zip(path: str | os.PathLike[str], kind: str) -> Iterator[tuple[zipfile.ZipFile, int]]:
    """Open ``path`` as a zip archive and yield ``(archive, archive_size_in_bytes)``.

    Raises CheckpointError (naming the file and ``kind``, e.g. "PyTorch checkpoint") if the
    archive is unreadable, has an unsafe member name (absolute, ``..``, backslash), or lists
    the same member twice.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        with zip_errors(path, f"the zip directory of this {kind}"):
            archive = zipfile.ZipFile(f)
        with archive:
            seen: set[str] = set()
            for info in archive.infolist():
                if _unsafe_name(info.filename):
                    raise CheckpointError(
                        f"{describe(path)} is not a safe {kind}: member name "
                        f"{info.filename!r} is absolute or leaves the archive (path traversal)"
                    )
                if info.filename in seen:
                    raise CheckpointError(
                        f"{describe(path)} is corrupted: member {info.filename!r} appears twice"
                    )
                seen.add(info.filename)
            yield archive, size


def check_member_size(path: str | os.PathLike[str], info: zipfile.ZipInfo, archive_size: int) -> None:
    """Refuse a member whose declared size cannot be backed by the archive's bytes.

    Stored members must fit inside the archive; deflated ones may not claim more than
    deflate's maximum expansion of their compressed bytes. Other compression methods
    are refused (neither torch nor numpy writes them).
    """
    name = info.filename
    if info.compress_size > archive_size or info.header_offset + info.compress_size > archive_size:
        raise CheckpointError(
            f"{describe(path)} is truncated: member {name!r} declares {info.compress_size} "
            f"bytes but the file has only {archive_size}"
        )
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise CheckpointError(
                f"{describe(path)} is corrupted: stored member {name!r} declares "
                f"{info.file_size} bytes but holds {info.compress_size}"
            )
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise CheckpointError(
                f"{describe(path)} is corrupted: deflated member {name!r} claims "
                f"{info.file_size} bytes from {info.compress_size} compressed bytes"
            )
    else:
        raise CheckpointError(
            f"{describe(path)}: member {name!r} uses zip compression method "
            f"{info.compress_type}; only stored and deflated members are supported"
        )


def read_member(path: str | os.PathLike[str], archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                archive_size: int, what: str) -> bytes:
    """Read one member whole, after the size checks; the CRC is verified by zipfile."""
    check_member_size(path, info, archive_size)
    with zip_errors(path, what):
        data = archive.read(info)
    if len(data) != info.file_size:
        raise CheckpointError(
            f"{describe(path)} is truncated: {what} should be {info.file_size} bytes, "
            f"got {len(data)}"
        )
    return data
