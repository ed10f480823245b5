"""Finding pretrained weights: a path, or a known name resolved from the local torch hub
cache and otherwise downloaded (progress bar, SHA-256 prefix check, clear error offline)."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .base import CheckpointMismatch

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


def hub_dir() -> Path:
    """torch's checkpoint cache: $TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to
    $XDG_CACHE_HOME/torch or ~/.cache/torch."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(Path.home(), ".cache"))
        torch_home = os.path.join(cache, "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def _mirror(url: str) -> str:
    """WEITIAO_WEIGHTS_MIRROR=http://host/dir serves the same file names from a mirror."""
    mirror = os.environ.get("WEITIAO_WEIGHTS_MIRROR")
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[1]}" if mirror else url


def download(url: str, dest: Path, hash_prefix: str | None = None,
             progress: bool = True) -> Path:
    """Download url to dest through a temporary file, checking that the SHA-256 of the
    content starts with hash_prefix; dest only appears when the file is complete and
    correct."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".partial")
    try:
        try:
            response = urllib.request.urlopen(url, timeout=30)
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(
                f"cannot download {url}: {e}. If this machine is offline, put the file at "
                f"{dest} (the torch hub cache; torchvision users often have it already) or "
                f"pass weights=PATH") from e
        total = int(response.headers.get("Content-Length") or 0) or None
        from tqdm.auto import tqdm

        with response, os.fdopen(fd, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                sha.update(chunk)
                bar.update(len(chunk))
        digest = sha.hexdigest()
        if hash_prefix and not digest.startswith(hash_prefix):
            raise ValueError(f"downloaded {url} has SHA-256 {digest[:len(hash_prefix)]}..., "
                             f"expected {hash_prefix}...: the file is corrupt or not the one "
                             f"named; nothing was saved")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve(weights, known: dict[str, str], arch: str, progress: bool = True) -> Path:
    """A checkpoint path for ``weights``: an existing path as is; a known name
    ("IMAGENET1K_V1", "DEFAULT" = the first listed) from the hub cache or downloaded."""
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        return Path(weights)
    name = str(weights)
    if name == "DEFAULT":
        name = next(iter(known))
    if name not in known:
        raise ValueError(f"{arch}: weights={weights!r} is neither an existing file nor a known "
                         f"name; known: {', '.join(['DEFAULT', *known])}")
    url = known[name]
    dest = hub_dir() / url.rsplit("/", 1)[1]
    if dest.is_file():
        return dest
    match = _HASH_IN_NAME.search(dest.name)
    return download(_mirror(url), dest, match.group(1) if match else None, progress)


def load_weights(model, weights, known: dict[str, str], arch: str, num_classes: int,
                 rng=None, progress: bool = True) -> None:
    """Load ``weights`` (see :func:`resolve`) into model by parameter name and size its
    output layer to ``num_classes`` (see ``Classifier.load_source``)."""
    load_checkpoint(model, resolve(weights, known, arch, progress), arch, num_classes, rng)


def load_checkpoint(model, path, arch: str, num_classes: int, rng=None) -> None:
    """Load the checkpoint file at ``path`` into model (``Classifier.load_source``); parameters
    that do not fit raise :class:`CheckpointMismatch` naming the file and ``arch``."""
    from ..io import load_state_dict

    state = load_state_dict(path)
    try:
        model.load_source(state, num_classes, rng=rng)
    except ValueError as e:
        raise CheckpointMismatch(f"{arch}: {path} does not fit this architecture: {e}",
                                 getattr(e, "classes", None)) from None
