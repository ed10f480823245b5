"""Checks shared by the writers: what a savable state dict looks like."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import CheckpointError, describe

__all__ = ["savable_arrays"]

# bool, signed and unsigned ints, floats, complex: what both safetensors and torch know.
_NUMERIC_KINDS = "biufc"


def savable_arrays(tensors: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Check ``tensors`` and return them as C-contiguous little-endian NumPy arrays.

    Keys must be non-empty strings; values anything ``np.asarray`` turns into a numeric
    array. Object, string and structured arrays raise CheckpointError naming the key.
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(
            f"expected a mapping of names to arrays to save to {describe(path)}, "
            f"got {type(tensors).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"state dict keys must be non-empty str, got {key!r}")
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields:
            raise CheckpointError(
                f"cannot save {key!r} to {describe(path)}: its dtype {array.dtype} is not a "
                "numeric tensor type (object, string and structured arrays are refused)"
            )
        little = array.dtype.newbyteorder("<")
        out[key] = np.asarray(array, dtype=little, order="C")  # keeps 0-d arrays 0-d
    return out
