"""The one exception that weitiao.io raises for a file it cannot or will not read."""
from __future__ import annotations

import os

__all__ = ["CheckpointError"]


class CheckpointError(ValueError):
    """A weights file is malformed, truncated, unsafe, or not a tensor state dict.

    The message names the file and says what was wrong with it, e.g.
    ``refusing to load global os.system from 'evil.pth': only tensor state dicts are
    allowed``. It is a ``ValueError``, so ``except ValueError`` catches it too.

    >>> try:
    ...     raise CheckpointError("'w.pth' is truncated")
    ... except ValueError as e:
    ...     print(e)
    'w.pth' is truncated
    """


def describe(path: str | os.PathLike[str]) -> str:
    """How error messages name a file: its path, quoted (``'runs/w.pth'``)."""
    return repr(os.fspath(path))


def number(n: object) -> str:
    """A value for an error message. Python refuses to print integers of more than 4,300
    digits (a hostile file can declare one), so anything that will not print is described
    instead of raising a second, unrelated error."""
    try:
        text = repr(n)
    except ValueError:
        return f"<{type(n).__name__} too large to print>"
    return text if len(text) <= 80 else text[:80] + "..."
