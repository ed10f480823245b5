"""load_state_dict / save_state_dict: one entry point for every weights format.

Loading recognises the format from the file's first bytes, not its name (a ``.bin`` or
``.ckpt`` may hold any of them): PyTorch zip or legacy pickle, safetensors, or npz. It
then unwraps training checkpoints (``{"epoch": 3, "state_dict": {...}}``) and strips the
``module.`` prefix that ``nn.DataParallel`` adds, so the keys match torchvision's names.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import CheckpointError, describe
from .npz import load_npz, save_npz
from .pth import load_pth
from .safetensors_io import load_safetensors, save_safetensors
from .zipcheck import open_zip

__all__ = ["load_state_dict", "save_state_dict", "detect_format", "WRAPPER_KEYS"]

# Keys under which training scripts commonly nest the model's state dict, tried in order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net")
_MAX_WRAPPING = 3  # {"model": {"state_dict": ...}} is the deepest seen in practice


def detect_format(path: str | os.PathLike[str]) -> str:
    """Say which weights format ``path`` holds, from its content: ``"pth"``,
    ``"safetensors"`` or ``"npz"``. Raises CheckpointError for anything else.

    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> np.savez(path, w=np.zeros(1))            # np.savez adds ".npz" to the name
    >>> detect_format(path + ".npz")
    'npz'
    """
    with open(path, "rb") as f:
        head = f.read(512)
        size = os.fstat(f.fileno()).st_size
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        with open_zip(path, "weights archive") as (archive, _):
            names = [n for n in archive.namelist() if not n.endswith("/")]
        if any(n.endswith("/data.pkl") for n in names):
            return "pth"
        if all(n.endswith(".npy") for n in names):
            return "npz"
        raise CheckpointError(
            f"{describe(path)} is a zip archive but neither a PyTorch checkpoint (no "
            "<archive>/data.pkl) nor an .npz (members other than .npy files)"
        )
    # safetensors before pickle: a header of 128 + 256k bytes makes the file start with
    # 0x80, pickle's PROTO opcode; a pickle read as a little-endian header size is far
    # larger than any file.
    if len(head) >= 10 and head[8:9] == b"{":
        (header_size,) = struct.unpack("<Q", head[:8])
        if header_size <= size - 8:
            return "safetensors"
    if head[:1] == b"\x80" or head[257:262] == b"ustar":
        return "pth"
    if head[:6] == b"\x93NUMPY":
        raise CheckpointError(
            f"{describe(path)} is a single .npy array, not a state dict: save a dict of "
            "arrays with weitiao.io.save_npz or np.savez"
        )
    raise CheckpointError(
        f"{describe(path)} is not a weights file weitiao can read (PyTorch .pth, "
        f".safetensors or .npz); it starts with {head[:8]!r}"
    )


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
    )


def _unwrap(obj: dict, depth: int = 0) -> dict[str, np.ndarray] | None:
    if _is_state_dict(obj):
        return obj
    if depth < _MAX_WRAPPING:
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict):
                found = _unwrap(inner, depth + 1)
                if found is not None:
                    return found
    return None


def _strip_module_prefix(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    prefix = "module."
    while state and all(k.startswith(prefix) and len(k) > len(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a state dict (name -> NumPy array) from a PyTorch, safetensors or npz file.

    The format is found from the file's content (``detect_format``). A checkpoint that
    wraps the state dict, like ``{"epoch": 3, "state_dict": {...}, "optimizer": {...}}``,
    is unwrapped by looking under the keys in ``WRAPPER_KEYS`` (``state_dict``,
    ``model_state_dict``, ``model_state``, ``model``, ...), and a ``module.`` prefix
    shared by every key (``nn.DataParallel``) is removed. Arrays keep their dtype
    (bfloat16 becomes float32); the model loader casts.

    Raises CheckpointError if the file is damaged, unsafe (a pickle naming any global
    beyond tensor rebuilding) or holds no dict of tensors.

    >>> sd = load_state_dict("checkpoint.pth")   # doctest: +SKIP
    >>> sd["fc.weight"].shape                    # doctest: +SKIP
    (1000, 512)
    """
    fmt = detect_format(path)
    if fmt == "safetensors":
        state, _ = load_safetensors(path)
    elif fmt == "npz":
        state = load_npz(path)
    else:
        checkpoint = load_pth(path)
        found = _unwrap(checkpoint)
        if found is None:
            others = [k for k, v in checkpoint.items() if not isinstance(v, np.ndarray)]
            listed = ", ".join(f"{k!r} ({type(checkpoint[k]).__name__})" for k in others[:5])
            raise CheckpointError(
                f"{describe(path)} holds no state dict: non-tensor values under {listed}"
                f"{' ...' if len(others) > 5 else ''}, and none of the keys "
                f"{', '.join(WRAPPER_KEYS)} holds a dict of tensors"
            )
        state = found
    return _strip_module_prefix(state)


def save_state_dict(state: Mapping[str, Any], path: str | os.PathLike[str],
                    metadata: Mapping[str, str] | None = None) -> None:
    """Save a state dict to ``path``; the extension picks the format.

    ``.safetensors`` (recommended: PyTorch and Hugging Face tools read it, and it holds
    ``metadata``) or ``.npz`` (NumPy only; no metadata). Writing is atomic: a crash
    mid-save leaves any previous file intact.

    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "finetuned.safetensors")
    >>> save_state_dict({"fc.bias": np.zeros(2, np.float32)}, path, {"classes": "hotdog,not"})
    >>> load_state_dict(path)["fc.bias"]
    array([0., 0.], dtype=float32)
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension == ".safetensors":
        save_safetensors(state, path, metadata)
    elif extension == ".npz":
        if metadata:
            raise ValueError(
                f"cannot keep metadata in {describe(path)}: .npz has no place for it; "
                "save to a .safetensors file instead"
            )
        save_npz(state, path)
    else:
        raise ValueError(
            f"cannot save a state dict to {describe(path)}: use a .safetensors or .npz "
            "name (PyTorch reads .safetensors with safetensors.torch.load_file)"
        )
