"""The table of ONNX exporters, one function per layer type.

An exporter turns one weitiao module into ONNX nodes: ``fn(graph, module, path, x) -> y``
with ``graph`` the :class:`weitiao.export.graph.GraphBuilder`, ``path`` the module's dotted
name in the model (``"layer1.0.conv1"``) and ``x``, ``y`` :class:`Tensor` values. A new
layer or model family adds entries here, not branches in the walker:

>>> @register(MyBlock, subclasses=True)  # doctest: +SKIP
... def export_my_block(graph, block, path, x):
...     return graph.export(block.inner, f"{path}.inner", x)
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class ExportError(ValueError):
    """A model, or one of its layers, that cannot be written as ONNX; the text names the
    layer's path and type."""


class Tensor(NamedTuple):
    """A value of the graph: its name and its shape without the batch axis, e.g.
    ``Tensor("layer1", (64, 56, 56))`` for an (N, 64, 56, 56) activation."""

    name: str
    shape: tuple[int, ...]


Exporter = Callable[..., Tensor]

# type -> (exporter, whether subclasses that keep the type's forward use it too)
EXPORTERS: dict[type, tuple[Exporter, bool]] = {}


def register(*types: type, subclasses: bool = False) -> Callable[[Exporter], Exporter]:
    """Decorator: ``fn`` exports modules of ``types``. With ``subclasses=True`` it also
    exports subclasses that inherit the type's ``forward`` (a container whose subclasses
    only rename or list their children); a subclass that overrides ``forward`` needs an
    entry of its own."""
    def add(fn: Exporter) -> Exporter:
        for t in types:
            EXPORTERS[t] = (fn, subclasses)
        return fn
    return add


def exporter_for(module) -> Exporter | None:
    """The exporter registered for ``module``'s type, else for the nearest ancestor type
    registered with ``subclasses=True`` whose ``forward`` the module still runs; None when
    there is none."""
    cls = type(module)
    if cls in EXPORTERS:
        return EXPORTERS[cls][0]
    for base in cls.__mro__[1:]:
        entry = EXPORTERS.get(base)
        if entry is not None and entry[1] and cls.forward is base.forward:
            return entry[0]
    return None


def supported_types() -> list[str]:
    """Names of the layer types with an exporter, sorted."""
    return sorted(t.__name__ for t in EXPORTERS)
