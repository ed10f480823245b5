"""Conv2d over the C kernels."""
from __future__ import annotations

import numpy as np

from .. import _C
from . import init
from .module import Module, Parameter


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return (int(v[0]), int(v[1]))
    raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding along one axis: the output has ceil(size / stride)
    positions and any odd padding goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2d(Module):
    """2-D convolution, PyTorch's arguments and parameter layout (weight OIHW).

    ``padding`` is an int, a pair (pad_h, pad_w), a 4-tuple (top, bottom, left, right), or
    ``"same"``: TensorFlow's rule for the current input size (extra padding at the bottom
    and right), which is what TF-trained weights such as EfficientNet-Lite expect.

    The C kernel picks the algorithm from the shape: depthwise convolutions (``groups ==
    in_channels``) run a direct loop; 3x3 stride-1 convolutions with 16 or more input and
    output channels and enough 4x4 output tiles in the batch (16; 128 above 256 x 256
    channels) use Winograd's F(4x4, 3x3), whose rounding error is about 1e-6 of the
    largest output (PyTorch's direct convolution: about 1e-7); the rest is im2col and a
    matrix product.

    >>> conv = Conv2d(3, 8, 3, padding=1, rng=0)
    >>> conv(np.zeros((2, 3, 32, 32), np.float32)).shape
    (2, 8, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, rng=None):
        super().__init__()
        if in_channels < 1 or out_channels < 1 or groups < 1:
            raise ValueError(f"Conv2d: channels and groups must be positive, got "
                             f"in_channels={in_channels}, out_channels={out_channels}, "
                             f"groups={groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "Conv2d kernel_size")
        self.stride = _pair(stride, "Conv2d stride")
        self.dilation = _pair(dilation, "Conv2d dilation")
        if padding == "same":
            self.padding = "same"
        elif isinstance(padding, (tuple, list)) and len(padding) == 4:
            self.padding = tuple(int(p) for p in padding)
        else:
            self.padding = _pair(padding, "Conv2d padding")
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, kh, kw),
                                         np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        init.default_layer_init_(self.weight, self.bias, rng)
        self._saved = None
        self._plan = None  # (input shape and hyperparameters, the C call's keyword arguments)

    def _padding_for(self, h: int, w: int):
        if self.padding != "same":
            return self.padding
        top, bottom = same_padding(h, self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(w, self.kernel_size[1], self.stride[1], self.dilation[1])
        return (top, bottom, left, right)

    def _args_for(self, shape) -> dict:
        """The C call's keyword arguments for an input of ``shape``: checked and derived once
        per shape ("same" padding depends on it) and reused while neither the shape nor a
        hyperparameter changes."""
        key = (shape, self.padding, self.stride, self.dilation, self.groups)
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}): expected input "
                             f"(N, {self.in_channels}, H, W), got shape {shape}")
        args = dict(stride=self.stride, padding=self._padding_for(shape[2], shape[3]),
                    dilation=self.dilation, groups=self.groups)
        self._plan = (key, args)
        return args

    def forward(self, x: np.ndarray) -> np.ndarray:
        args = self._args_for(np.shape(x))
        bias = self.bias.data if self.bias is not None else None
        y = _C.conv2d_forward(x, self.weight.data, bias, **args)
        if self.keeps_activations:
            self._saved = (x if self.weight.requires_grad else None, x.shape, args)
        else:
            self._saved = None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        x, shape, args = self._saved
        self._saved = None
        if self.weight.requires_grad:
            db = self.bias.grad_buffer() if self.bias is not None and self.bias.requires_grad \
                else None
            _C.conv2d_backward_weight(grad_out, x, self.weight.grad_buffer(), db, **args)
        elif self.bias is not None and self.bias.requires_grad:
            self.bias.grad_buffer()[...] += grad_out.sum(axis=(0, 2, 3))
        if not self.input_needs_grad:
            return None
        return _C.conv2d_backward_data(grad_out, self.weight.data, shape, **args)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
