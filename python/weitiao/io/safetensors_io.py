"""Read and write ``.safetensors`` files through the ``safetensors`` package's NumPy API.

safetensors is a flat, pickle-free format (a JSON header of names, dtypes, shapes and
byte ranges, then the raw bytes) that PyTorch, JAX and Hugging Face tools all read. The
package is an optional dependency: ``pip install safetensors``.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from .arrays import savable_arrays
from .atomic import atomic_write
from .errors import CheckpointError, describe

__all__ = ["load_safetensors", "save_safetensors"]


def _safetensors() -> Any:
    """Import safetensors or explain how to get it."""
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "reading and writing .safetensors files needs the safetensors package: "
            "pip install safetensors"
        ) from e
    return safetensors


def _bfloat16_as_float32(path: str | os.PathLike[str], name: str) -> np.ndarray:
    """Read one BF16 tensor (which NumPy cannot hold) and widen it exactly to float32.

    Only called after ``safe_open`` has validated the header and the byte ranges.
    """
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        entry = json.loads(f.read(header_size))[name]
        begin, end = entry["data_offsets"]
        f.seek(8 + header_size + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def load_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load a ``.safetensors`` file as ``(tensors, metadata)``.

    ``tensors`` maps names to writeable NumPy arrays, in sorted name order (the format
    keeps no insertion order); ``metadata`` is the header's ``__metadata__`` string dict (empty if absent). BF16
    tensors, which NumPy lacks, come back as float32 (exact). A damaged file raises
    CheckpointError naming it.

    >>> tensors, meta = load_safetensors("model.safetensors")  # doctest: +SKIP
    >>> meta.get("format"), tensors["fc.weight"].shape           # doctest: +SKIP
    ('pt', (1000, 512))
    """
    safetensors = _safetensors()
    with open(path, "rb"):  # the usual FileNotFoundError/PermissionError, unwrapped
        pass
    try:
        with safetensors.safe_open(os.fspath(path), framework="np") as f:
            metadata = dict(f.metadata() or {})
            tensors: dict[str, np.ndarray] = {}
            for name in f.keys():
                if f.get_slice(name).get_dtype() == "BF16":
                    tensors[name] = _bfloat16_as_float32(path, name)
                else:
                    array = f.get_tensor(name)
                    tensors[name] = array if array.flags.writeable else array.copy()
    except Exception as e:  # SafetensorError, or TypeError for a dtype NumPy lacks
        raise CheckpointError(
            f"{describe(path)} is not a readable safetensors file: {e}"
        ) from e
    return tensors, metadata


def save_safetensors(tensors: Mapping[str, Any], path: str | os.PathLike[str],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> array) to ``path`` as safetensors, atomically.

    Arrays are stored C-contiguous and little-endian with their own dtype. ``metadata``
    is an optional str -> str dict kept in the header (e.g. ``{"format": "pt"}``, the
    source model, the class names as JSON). The file is written through
    ``atomic_write``, so an existing file is replaced only once the new one is complete.
    PyTorch reads the result with ``safetensors.torch.load_file``.

    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "head.safetensors")
    >>> save_safetensors({"fc.bias": np.zeros(2, np.float32)}, path, {"classes": "cat,dog"})
    >>> load_safetensors(path)[1]
    {'classes': 'cat,dog'}
    """
    safetensors = _safetensors()
    arrays = savable_arrays(tensors, path)
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise TypeError(
                f"safetensors metadata must map str to str, got {metadata!r}; "
                "encode other values (e.g. with json.dumps)"
            )
        metadata = dict(metadata)
    try:
        data = safetensors.numpy.save(arrays, metadata=metadata)
    except Exception as e:  # SafetensorError: a dtype safetensors cannot store
        raise CheckpointError(f"cannot save to {describe(path)} as safetensors: {e}") from e
    with atomic_write(path) as f:
        f.write(data)
