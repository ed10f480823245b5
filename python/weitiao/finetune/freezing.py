"""Which parts of a model to freeze, from the ways users say it: a stage name ("layer2":
that stage and everything below it), a number of bottom stages, "bottom-half" (the lower
half of the stages, rounded up), a list of stage names or module paths, or "backbone"
(everything but the output layer: a linear probe)."""
from __future__ import annotations

from ..models.base import Classifier
from ..nn.norm import BatchNorm2d


def frozen_paths(model: Classifier, freeze) -> list[str]:
    """Module paths that ``freeze`` names, from the input upwards.

    >>> frozen_paths(resnet18(), "layer1")  # doctest: +SKIP
    ['conv1', 'bn1', 'layer1']
    """
    stages = list(model.stages)
    names = [name for name, _ in stages]
    if freeze is None or freeze is False:
        return []
    if freeze == "backbone":
        head = set(model.head_chain)
        return [c for c in model.chain if c not in head]
    if freeze == "bottom-half":
        return [p for _, paths in stages[:(len(stages) + 1) // 2] for p in paths]
    if isinstance(freeze, bool):
        raise TypeError("freeze: expected None, a stage name, a number of stages, "
                        "'bottom-half', a list of names or 'backbone', got True")
    if isinstance(freeze, int):
        if not 0 <= freeze <= len(stages):
            raise ValueError(f"freeze={freeze}: {type(model).__name__} has {len(stages)} "
                             f"stages ({', '.join(names)})")
        return [p for _, paths in stages[:freeze] for p in paths]
    if isinstance(freeze, str):
        if freeze not in names:
            raise ValueError(f"freeze={freeze!r}: not a stage of {type(model).__name__}; its "
                             f"stages from the input up are {', '.join(names)} (or use "
                             f"'bottom-half', 'backbone', a number of stages, or a list of "
                             f"module paths)")
        return [p for _, paths in stages[:names.index(freeze) + 1] for p in paths]
    paths = []
    for item in freeze:
        if item in names:
            paths.extend(dict(stages)[item])
            continue
        try:
            model.get_submodule(item)
        except KeyError:
            raise ValueError(f"freeze: {item!r} is neither a stage ({', '.join(names)}) nor a "
                             f"module of {type(model).__name__}") from None
        paths.append(item)
    return paths


def freeze_cuts(model: Classifier) -> list[tuple[tuple, list[str]]]:
    """The distinct ways ``freeze=`` can cut ``model``, from the input up: (the freeze values
    that make the cut, the module paths it freezes). Stage k's cut is made by ``k`` and by
    its name; "bottom-half" and "backbone" join the cut that freezes the same parameters,
    or make their own. ``model.summary()`` draws these.

    >>> [values for values, _ in freeze_cuts(resnet18())]  # doctest: +SKIP
    [(1, 'stem'), (2, 'layer1'), (3, 'layer2', 'bottom-half'), (4, 'layer3'),
     (5, 'layer4', 'backbone')]
    """
    def params(paths):
        return frozenset(id(p) for path in paths for p in model.get_submodule(path).parameters())

    cuts = [([k, name], frozen_paths(model, k)) for k, (name, _) in enumerate(model.stages, 1)]
    sets = [params(paths) for _, paths in cuts]
    for value in ("bottom-half", "backbone"):
        paths = frozen_paths(model, value)
        same = [i for i, s in enumerate(sets) if s == params(paths)]
        if same:
            cuts[same[0]][0].append(value)
        else:
            cuts.append(([value], paths))
    return [(tuple(values), paths) for values, paths in cuts]


def apply_freeze(model: Classifier, freeze, train_bn: bool = True) -> list[str]:
    """Freeze what ``freeze`` names (see :func:`frozen_paths`) and, with ``train_bn=False``,
    every BatchNorm layer too (running statistics, no affine updates). Returns the frozen
    module paths."""
    paths = frozen_paths(model, freeze)
    for p in paths:
        model.get_submodule(p).freeze()
    if not train_bn:
        for name, m in model.named_modules():
            if isinstance(m, BatchNorm2d):
                m.freeze()
                paths.append(name)
    return paths
