"""Training checkpoints: everything fit needs to continue exactly where it stopped (weights,
BatchNorm statistics, momentum buffers, schedule position, history and the random
generators of dropout layers), in one safetensors file written atomically."""
from __future__ import annotations

import json
import os

import numpy as np

from .history import History


def generators(model) -> list[np.random.Generator]:
    """The model's random generators (dropout, drop-connect), each once, in module order."""
    seen, gens = set(), []
    for _, module in model.named_modules():
        gen = module.__dict__.get("_rng")
        if isinstance(gen, np.random.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            gens.append(gen)
    return gens


def save(tuner, path: str | os.PathLike, scheduler=None) -> None:
    """Write a training checkpoint of ``tuner`` to ``path`` (.safetensors)."""
    from ..io import save_state_dict

    tensors = {f"model.{k}": v for k, v in tuner.model.state_dict().items()}
    optim = tuner.optimizer.state_dict()
    for key, buf in optim["momentum_buffers"].items():
        tensors[f"optim.{key}"] = buf
    info = {
        "tuner": tuner.metadata(),
        "param_groups": optim["param_groups"],
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generators": [g.bit_generator.state for g in generators(tuner.model)],
    }
    save_state_dict(tensors, path, metadata={"weitiao_training": json.dumps(info)})


def load(tuner, path: str | os.PathLike) -> dict | None:
    """Restore a checkpoint written by :func:`save` into ``tuner`` (same architecture and
    classes); returns the saved scheduler state."""
    from ..io import load_safetensors

    tensors, meta = load_safetensors(path)
    if "weitiao_training" not in meta:
        raise ValueError(f"{path} is not a weitiao training checkpoint (no weitiao_training "
                         f"metadata)")
    info = json.loads(meta["weitiao_training"])
    saved_classes = info["tuner"]["classes"]
    if saved_classes != tuner.classes:
        raise ValueError(f"{path} was written for classes {saved_classes}, this tuner has "
                         f"{tuner.classes}")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        tuner.model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    buffers = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
    tuner.optimizer.load_state_dict({"momentum_buffers": buffers,
                                     "param_groups": info["param_groups"]})
    gens = generators(tuner.model)
    if len(gens) != len(info["generators"]):
        raise ValueError(f"{path}: expected {len(gens)} random generator states, found "
                         f"{len(info['generators'])}")
    for gen, gen_state in zip(gens, info["generators"]):
        gen.bit_generator.state = gen_state
    tuner.history = History.from_dict(info["tuner"]["history"])
    return info["scheduler"]
