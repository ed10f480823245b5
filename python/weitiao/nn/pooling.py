"""Max, average and global average pooling over the C kernels."""
from __future__ import annotations

import numpy as np

from .. import _C
from .module import Module


class MaxPool2d(Module):
    """Max pooling, PyTorch's arguments (stride defaults to kernel_size).

    >>> MaxPool2d(3, stride=2, padding=1)(np.zeros((1, 4, 8, 8), np.float32)).shape
    (1, 4, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode
        self._saved = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, idx = _C.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                       self.dilation, self.ceil_mode)
        self._saved = (idx, x.shape) if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        (idx, shape), self._saved = self._saved, None
        return _C.max_pool2d_backward(grad_out, idx, shape)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling; ``count_include_pad=True`` as PyTorch's default."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self._shape = None

    def _args(self) -> dict:
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _C.avg_pool2d_forward(x, **self._args())
        self._shape = x.shape if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._shape)
        shape, self._shape = self._shape, None
        return _C.avg_pool2d_backward(grad_out, shape, **self._args())

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Global average pooling to (N, C, 1, 1); only ``output_size=1`` is supported, which
    is what classification heads use."""

    def __init__(self, output_size=1):
        super().__init__()
        if output_size not in (1, (1, 1)):
            raise ValueError(f"AdaptiveAvgPool2d: only output_size=1 is supported, got "
                             f"{output_size!r}")
        self.output_size = 1
        self._shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _C.global_avg_pool2d_forward(x)
        self._shape = x.shape if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._shape)
        shape, self._shape = self._shape, None
        return _C.global_avg_pool2d_backward(grad_out, shape)

    def extra_repr(self) -> str:
        return "output_size=1"
