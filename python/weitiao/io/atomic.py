"""atomic_write: replace a file all at once, or not at all.

A training run that is killed while it saves a checkpoint must not leave a half-written
file where the last good one was. The writer gets a temporary file in the target's own
directory (so ``os.replace`` stays on one file system and is atomic); only after it
returns, and the data is flushed and fsynced, is the temporary file renamed over the
target, and the directory fsynced so the rename itself survives a power cut.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_write", "check_writable"]


def _default_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 less the process umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # No /proc: read the umask by setting it (briefly process-wide, hence the fallback).
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open a directory; its rename is already durable enough
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (e.g. certain network mounts) refuse fsync on dirs
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike[str]) -> str:
    """Raise an OSError naming ``path`` unless a file can be written there; return its
    absolute path. Called before a long job, so a missing output folder is found before
    the work that would be saved there, not after it.

    >>> check_writable("/no/m.safetensors")
    Traceback (most recent call last):
    FileNotFoundError: cannot write /no/m.safetensors: the folder /no does not exist
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write {target}: it is a folder; give a file name")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {target}: the folder {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {target}: the folder {directory} is not writable")
    return target


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the ``with`` block succeeds.

    The temporary file lives in the same directory as ``path``. On a clean exit it is
    flushed, fsynced, renamed over ``path`` with ``os.replace``, and the directory is
    fsynced. If the block raises, the temporary file is removed and an existing ``path``
    is left exactly as it was. The new file keeps the permission bits of the file it
    replaces, or gets the usual ``0o666 & ~umask`` if there was none.

    Args:
        path: the file to create or replace.
        mode: ``"wb"`` (default) for bytes or ``"w"`` for UTF-8 text.

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("epoch 3")
    >>> open(target).read()
    'epoch 3'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    target = check_writable(path)
    directory, name = os.path.split(target)
    try:
        file_mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        file_mode = _default_mode()

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {target}: {e.strerror}") from None
    try:
        if mode == "w":
            handle: IO = os.fdopen(fd, "w", encoding="utf-8")
        else:
            handle = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
