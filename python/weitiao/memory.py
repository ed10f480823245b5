"""The array cache: NumPy arrays allocated inside ``with array_cache():`` take their
memory from weitiao's block cache, which keeps freed blocks of 256 KiB or more and hands
them out again. A training step allocates the same large activations every time; reusing
them avoids a page fault per 4 KiB of fresh memory, which on EfficientNet-Lite0 cost more
than the arithmetic. FineTuner's fit, evaluate and predict use it; custom loops can too.

>>> import numpy as np, weitiao
>>> with weitiao.array_cache():
...     a = np.ones((1024, 1024), np.float32)
>>> weitiao.array_cache_info()["limit"] > 0
True
"""
from __future__ import annotations

import contextlib

from . import _C

_HANDLER = _C.array_cache_handler()


@contextlib.contextmanager
def array_cache():
    """Allocate NumPy arrays from the block cache inside the ``with`` block (this thread's
    context only). Arrays made inside may live on after it; their memory goes back to the
    cache when they are freed."""
    previous = _C.set_array_handler(_HANDLER)
    try:
        yield
    finally:
        _C.set_array_handler(previous)


def array_cache_info() -> dict:
    """{"held": bytes kept in freed blocks, "limit": the most it may keep}."""
    return _C.array_cache_info()


def set_array_cache_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` in freed blocks (default 2 GiB); 0 turns caching off."""
    _C.set_array_cache_limit(nbytes)


def clear_array_cache() -> None:
    """Return every cached block to the system."""
    _C.array_cache_clear()
