"""Folding eval-mode BatchNorm into the convolution before it, on the built graph.

A BatchNormalization on running statistics is an affine map per channel,
y = (x - mean) * s + beta with s = gamma / sqrt(var + eps); after a Conv with weight W and
bias b it merges into one Conv with W' = W * s (per output channel) and
b' = (b - mean) * s + beta. Computed in float64, stored as float32.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from onnx import helper


def fold_batchnorm(graph) -> int:
    """Merge every BatchNormalization whose input is a Conv output used by nothing else
    into that Conv, in place on ``graph`` (a GraphBuilder); returns how many were merged.
    Weights no node uses any more are dropped."""
    uses = Counter(name for node in graph.nodes for name in node.input)
    producer = {out: node for node in graph.nodes for out in node.output}
    kept, folded = [], 0
    for node in graph.nodes:
        conv = producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is None or conv.op_type != "Conv" or uses[node.input[0]] != 1:
            kept.append(node)
            continue
        _merge(graph, conv, node)
        folded += 1
    graph.nodes[:] = kept
    used = {name for node in graph.nodes for name in node.input}
    for name in [n for n in graph.weights if n not in used]:
        del graph.weights[name]
    return folded


def _merge(graph, conv, bn) -> None:
    w = graph.weights
    gamma, beta, mean, var = (w[name].astype(np.float64) for name in bn.input[1:5])
    eps = next(helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon")
    scale = gamma / np.sqrt(var + eps)
    weight = w[conv.input[1]].astype(np.float64)
    bias = w[conv.input[2]].astype(np.float64) if len(conv.input) > 2 else \
        np.zeros(weight.shape[0])
    new_w = graph.weight(f"{conv.name}.weight_folded", weight * scale[:, None, None, None])
    new_b = graph.weight(f"{conv.name}.bias_folded", (bias - mean) * scale + beta)
    del conv.input[1:]
    conv.input.extend([new_w, new_b])
    conv.output[0] = bn.output[0]
