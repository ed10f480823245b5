"""weitiao.io: load pretrained weights without PyTorch, save fine-tuned ones safely.

Reading:
    load_state_dict(path)   any supported file -> {name: np.ndarray}, format from content,
                            {"state_dict": ...} unwrapped, "module." prefix stripped
    load_pth(path)          a PyTorch checkpoint (zip or legacy), as saved, via a
                            restricted unpickler that runs none of the file's code
    load_safetensors(path)  -> (tensors, metadata)
    load_npz(path)          an .npz of arrays, nothing unpickled
Writing (atomic: a crash mid-save leaves the old file intact):
    save_state_dict(state, path, metadata=None)   .safetensors or .npz by extension
    save_safetensors(tensors, path, metadata=None)
    save_npz(tensors, path)
    atomic_write(path)      the context manager all of them write through
    check_writable(path)    raise, naming path, if a file cannot be written there
Errors: CheckpointError (a ValueError) names the file and what was wrong with it.

>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> save_state_dict({"module.fc.bias": np.zeros(2, np.float32)}, path)
>>> list(load_state_dict(path))
['fc.bias']
"""
from .atomic import atomic_write, check_writable
from .errors import CheckpointError
from .npz import load_npz, save_npz
from .pth import load_pth
from .safetensors_io import load_safetensors, save_safetensors
from .state_dict import detect_format, load_state_dict, save_state_dict

__all__ = [
    "CheckpointError",
    "atomic_write",
    "check_writable",
    "detect_format",
    "load_npz",
    "load_pth",
    "load_safetensors",
    "load_state_dict",
    "save_npz",
    "save_safetensors",
    "save_state_dict",
]
