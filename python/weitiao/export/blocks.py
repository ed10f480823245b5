"""ONNX exporters for weitiao's containers: Sequential, the model classes (a chain of named
children), ResNet's BasicBlock and Bottleneck, and the inverted residual blocks of
MobileNetV2 and EfficientNet-Lite (drop connect is off in eval mode)."""
from __future__ import annotations

from ..models.base import Classifier
from ..models.inverted_residual import InvertedResidualBase
from ..models.resnet import _Residual
from ..nn.module import Sequential
from .registry import ExportError, Tensor, register


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def export_chain(graph, named_modules, path: str, x: Tensor) -> Tensor:
    """Each (name, module) applied to the previous one's output."""
    for name, module in named_modules:
        x = graph.export(module, _child(path, name), x)
    return x


def _add(graph, a: Tensor, b: Tensor, path: str) -> Tensor:
    if a.shape != b.shape:
        raise ExportError(f"layer '{path}': the residual branch gives (N, "
                          f"{', '.join(map(str, a.shape))}) but the shortcut (N, "
                          f"{', '.join(map(str, b.shape))})")
    return graph.node("Add", [a.name, b.name], f"{path}.add", a.shape)


@register(Sequential, subclasses=True)
def export_sequential(graph, seq: Sequential, path: str, x: Tensor) -> Tensor:
    return export_chain(graph, seq.named_children(), path, x)


@register(Classifier, subclasses=True)
def export_classifier(graph, model: Classifier, path: str, x: Tensor) -> Tensor:
    """The model's ``chain`` of children, in order."""
    return export_chain(graph, [(n, model.get_submodule(n)) for n in model.chain], path, x)


@register(_Residual, subclasses=True)
def export_residual(graph, block: _Residual, path: str, x: Tensor) -> Tensor:
    """relu(main(x) + shortcut(x)): ResNet's BasicBlock and Bottleneck."""
    out = export_chain(graph, [(n, block._modules[n]) for n in block.main], path, x)
    identity = x if block.downsample is None else \
        graph.export(block.downsample, _child(path, "downsample"), x)
    return graph.export(block.relu, _child(path, "relu"), _add(graph, out, identity, path))


@register(InvertedResidualBase, subclasses=True)
def export_inverted_residual(graph, block: InvertedResidualBase, path: str,
                             x: Tensor) -> Tensor:
    """main(x) (+ x when the block has a skip connection)."""
    names = {id(m): n for n, m in block.named_children()}
    out = export_chain(graph, [(names[id(m)], m) for m in block._main()], path, x)
    return _add(graph, out, x, path) if block.has_skip else out
