"""ONNX exporters for the layers of weitiao.nn, in eval mode: Conv2d (groups, depthwise,
TensorFlow "SAME" padding resolved for the input size), BatchNorm2d, ReLU, ReLU6, the
poolings, Flatten, Linear; Dropout and Identity write nothing."""
from __future__ import annotations

import math

from ..nn.activation import ReLU, ReLU6
from ..nn.conv import Conv2d
from ..nn.linear import Dropout, Flatten, Identity, Linear
from ..nn.norm import BatchNorm2d
from ..nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .registry import ExportError, Tensor, register


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _expect_image(module, path: str, x: Tensor, channels: int) -> None:
    if len(x.shape) != 3 or x.shape[0] != channels:
        raise ExportError(f"layer '{path}' ({type(module).__name__}) expects input "
                          f"(N, {channels}, H, W), got (N, {', '.join(map(str, x.shape))})")


def _out_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
              dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output positions along one axis, PyTorch's rule (with ceil_mode, a window that
    would start in the end padding is dropped)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


@register(Conv2d)
def export_conv2d(graph, conv: Conv2d, path: str, x: Tensor) -> Tensor:
    """Conv with explicit pads [top, left, bottom, right]: "same" padding is resolved for
    the input size, as Conv2d itself does."""
    _expect_image(conv, path, x, conv.in_channels)
    _, h, w = x.shape
    pad = conv._padding_for(h, w)
    top, bottom, left, right = pad if len(pad) == 4 else (pad[0], pad[0], pad[1], pad[1])
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    shape = (conv.out_channels, _out_size(h, kh, sh, top, bottom, dh),
             _out_size(w, kw, sw, left, right, dw))
    if min(shape[1:]) < 1:
        raise ExportError(f"layer '{path}' (Conv2d): input {h}x{w} is too small for kernel "
                          f"{kh}x{kw}; give a larger input_size")
    inputs = [x.name, graph.weight(f"{path}.weight", conv.weight.data)]
    if conv.bias is not None:
        inputs.append(graph.weight(f"{path}.bias", conv.bias.data))
    return graph.node("Conv", inputs, path, shape, kernel_shape=[kh, kw], strides=[sh, sw],
                      pads=[top, left, bottom, right], dilations=[dh, dw], group=conv.groups)


@register(BatchNorm2d)
def export_batchnorm2d(graph, bn: BatchNorm2d, path: str, x: Tensor) -> Tensor:
    """BatchNormalization on the running statistics (eval mode)."""
    _expect_image(bn, path, x, bn.num_features)
    if not bn.track_running_stats:
        raise ExportError(f"layer '{path}' (BatchNorm2d) has track_running_stats=False: it "
                          f"normalises with each batch's statistics even in eval mode, which "
                          f"an ONNX BatchNormalization cannot do")
    ones = [1.0] * bn.num_features
    scale = bn.weight.data if bn.weight is not None else ones
    shift = bn.bias.data if bn.bias is not None else [0.0] * bn.num_features
    inputs = [x.name, graph.weight(f"{path}.weight", scale), graph.weight(f"{path}.bias", shift),
              graph.weight(f"{path}.running_mean", bn.running_mean),
              graph.weight(f"{path}.running_var", bn.running_var)]
    return graph.node("BatchNormalization", inputs, path, x.shape, epsilon=bn.eps)


@register(ReLU)
def export_relu(graph, relu: ReLU, path: str, x: Tensor) -> Tensor:
    return graph.node("Relu", [x.name], path, x.shape)


@register(ReLU6)
def export_relu6(graph, relu: ReLU6, path: str, x: Tensor) -> Tensor:
    """Clip to [0, 6]."""
    return graph.node("Clip", [x.name, graph.constant(0.0), graph.constant(6.0)], path,
                      x.shape)


def _pool_attrs(pool, path: str, x: Tensor, dilation=(1, 1)) -> tuple[dict, tuple]:
    """The ONNX attributes of a max or average pooling, and its output shape."""
    if len(x.shape) != 3:
        raise ExportError(f"layer '{path}' ({type(pool).__name__}) expects input "
                          f"(N, C, H, W), got (N, {', '.join(map(str, x.shape))})")
    c, h, w = x.shape
    (kh, kw) = _pair(pool.kernel_size)
    (sh, sw) = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    (ph, pw) = _pair(pool.padding)
    ceil = bool(pool.ceil_mode)
    shape = (c, _out_size(h, kh, sh, ph, ph, dilation[0], ceil),
             _out_size(w, kw, sw, pw, pw, dilation[1], ceil))
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                 ceil_mode=int(ceil))
    return attrs, shape


@register(MaxPool2d)
def export_maxpool2d(graph, pool: MaxPool2d, path: str, x: Tensor) -> Tensor:
    dilation = _pair(pool.dilation)
    attrs, shape = _pool_attrs(pool, path, x, dilation)
    return graph.node("MaxPool", [x.name], path, shape, dilations=list(dilation), **attrs)


@register(AvgPool2d)
def export_avgpool2d(graph, pool: AvgPool2d, path: str, x: Tensor) -> Tensor:
    attrs, shape = _pool_attrs(pool, path, x)
    return graph.node("AveragePool", [x.name], path, shape,
                      count_include_pad=int(pool.count_include_pad), **attrs)


@register(AdaptiveAvgPool2d)
def export_adaptive_avgpool2d(graph, pool: AdaptiveAvgPool2d, path: str, x: Tensor) -> Tensor:
    """GlobalAveragePool: (N, C, H, W) -> (N, C, 1, 1)."""
    if len(x.shape) != 3:
        raise ExportError(f"layer '{path}' (AdaptiveAvgPool2d) expects input (N, C, H, W), "
                          f"got (N, {', '.join(map(str, x.shape))})")
    return graph.node("GlobalAveragePool", [x.name], path, (x.shape[0], 1, 1))


@register(Flatten)
def export_flatten(graph, flatten: Flatten, path: str, x: Tensor) -> Tensor:
    return graph.node("Flatten", [x.name], path, (math.prod(x.shape),), axis=1)


@register(Linear)
def export_linear(graph, linear: Linear, path: str, x: Tensor) -> Tensor:
    """Gemm: x W^T + b."""
    if x.shape != (linear.in_features,):
        raise ExportError(f"layer '{path}' (Linear) expects input (N, {linear.in_features}), "
                          f"got (N, {', '.join(map(str, x.shape))})")
    inputs = [x.name, graph.weight(f"{path}.weight", linear.weight.data)]
    if linear.bias is not None:
        inputs.append(graph.weight(f"{path}.bias", linear.bias.data))
    return graph.node("Gemm", inputs, path, (linear.out_features,), transB=1)


@register(Dropout, Identity)
def export_identity(graph, module, path: str, x: Tensor) -> Tensor:
    """Nothing: Dropout is the identity in eval mode."""
    return x
