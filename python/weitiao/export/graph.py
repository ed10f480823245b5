"""GraphBuilder: collects ONNX nodes and weights while the exporters walk a model, then
makes the ModelProto with the ``onnx`` package's helpers. Only weitiao.export imports this
file, and only when an export runs (it imports ``onnx``)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .registry import ExportError, Tensor, exporter_for, supported_types

BATCH = "batch"  # the name of the dynamic batch dimension of the input and the output


class GraphBuilder:
    """The nodes and initializers of the graph being built, in order.

    ``export(module, path, x)`` dispatches to the registered exporter; exporters add nodes
    with :meth:`node` and weights with :meth:`weight`.

    >>> g = GraphBuilder()
    >>> y = g.node("Relu", [g.input("input", (3, 8, 8)).name], "relu", (3, 8, 8))
    >>> g.nodes[0].op_type, y.shape
    ('Relu', (3, 8, 8))
    """

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.weights: dict[str, np.ndarray] = {}
        self.inputs: list[Tensor] = []
        self._names: set[str] = set()

    def unique(self, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``... if it is taken."""
        candidate, i = name, 1
        while candidate in self._names:
            i += 1
            candidate = f"{name}_{i}"
        self._names.add(candidate)
        return candidate

    def input(self, name: str, shape: tuple[int, ...]) -> Tensor:
        """A float32 graph input (batch, *shape)."""
        t = Tensor(self.unique(name), tuple(shape))
        self.inputs.append(t)
        return t

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add a float32 initializer; returns its (unique) name."""
        name = self.unique(name)
        self.weights[name] = np.ascontiguousarray(array, dtype=np.float32)
        return name

    def constant(self, value: float) -> str:
        """A float32 scalar initializer holding ``value``, shared by every node that asks
        for the same value (Clip's bounds)."""
        key = f"const_{value:g}"
        if key not in self.weights:
            self._names.add(key)
            self.weights[key] = np.array(value, np.float32)
        return key

    def node(self, op: str, inputs: list[str], name: str, shape: tuple[int, ...],
             **attrs) -> Tensor:
        """Add an ``op`` node named ``name`` with one output of shape (batch, *shape)."""
        name = self.unique(name)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return Tensor(name, tuple(int(s) for s in shape))

    def export(self, module, path: str, x: Tensor) -> Tensor:
        """Export ``module`` (at ``path`` in the model) applied to ``x``."""
        fn = exporter_for(module)
        if fn is None:
            raise ExportError(
                f"cannot export layer '{path or '(model)'}' ({type(module).__name__}) to ONNX: "
                f"no exporter is registered for {type(module).__qualname__}; supported: "
                f"{', '.join(supported_types())} (weitiao.export.register adds one)")
        return fn(self, module, path, x)

    def model(self, output: Tensor, output_name: str, opset: int, name: str) -> onnx.ModelProto:
        """The ModelProto: inputs and ``output`` (renamed ``output_name``) with a dynamic
        batch dimension, weights as initializers, the lowest IR version for ``opset``."""
        produced = any(output.name in node.output for node in self.nodes)
        if produced:
            for node in self.nodes:
                for names in (node.input, node.output):
                    for i, name in enumerate(names):
                        if name == output.name:
                            names[i] = output_name
        else:  # the model returns its input unchanged
            self.nodes.append(helper.make_node("Identity", [output.name], [output_name],
                                               name=output_name))
        inputs = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, [BATCH, *t.shape])
                  for t in self.inputs]
        outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                                 [BATCH, *output.shape])]
        inits = [numpy_helper.from_array(a, name) for name, a in self.weights.items()]
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=inits)
        opsets = [helper.make_opsetid("", opset)]
        return helper.make_model(graph, opset_imports=opsets,
                                 ir_version=helper.find_min_ir_version_for(opsets))
