"""ReLU and ReLU6 over the C kernels."""
from __future__ import annotations

import numpy as np

from .. import _C
from .module import Module


class ReLU(Module):
    """max(x, 0).

    >>> ReLU()(np.array([-1.0, 2.0], np.float32))
    array([0., 2.], dtype=float32)
    """

    _forward = staticmethod(_C.relu_forward)
    _backward = staticmethod(_C.relu_backward)

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace  # accepted for PyTorch compatibility; outputs are new arrays
        self._saved = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self._forward(x)
        self._saved = y if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        y, self._saved = self._saved, None
        return self._backward(grad_out, y)


class ReLU6(ReLU):
    """min(max(x, 0), 6), as MobileNet and EfficientNet-Lite use."""

    _forward = staticmethod(_C.relu6_forward)
    _backward = staticmethod(_C.relu6_backward)
