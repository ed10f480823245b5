"""Linear, Flatten, Dropout and Identity."""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b with W shaped (out_features, in_features) as PyTorch.

    >>> Linear(4, 2, rng=0)(np.ones((3, 4), np.float32)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: features must be positive, got in_features="
                             f"{in_features}, out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), np.float32))
        self.bias = Parameter(np.empty(out_features, np.float32)) if bias else None
        init.default_layer_init_(self.weight, self.bias, rng)
        self._saved = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if np.ndim(x) != 2 or np.shape(x)[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): expected input "
                             f"(N, {self.in_features}), got shape {np.shape(x)}")
        y = _C.linear_forward(x, self.weight.data,
                              self.bias.data if self.bias is not None else None)
        self._saved = x if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        x, self._saved = self._saved, None
        dw = self.weight.grad_buffer() if self.weight.requires_grad else None
        db = self.bias.grad_buffer() if self.bias is not None and self.bias.requires_grad \
            else None
        return _C.linear_backward(grad_out, x, self.weight.data, dw, db,
                                  need_input_grad=self.input_needs_grad)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class Flatten(Module):
    """(N, ...) -> (N, prod(...)), as torch.nn.Flatten with start_dim=1."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape if self.keeps_activations else None
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._shape)
        shape, self._shape = self._shape, None
        return grad_out.reshape(shape)


class Identity(Module):
    """Returns its input; a placeholder for a removed layer (e.g. a head)."""

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out if self.input_needs_grad else None


class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode. Masks come from a
    counter-based generator seeded by ``rng`` (reproducible whatever the thread count).

    >>> Dropout(0.5, rng=0).eval()(np.ones(4, np.float32))
    array([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self.inplace = inplace  # accepted for PyTorch compatibility
        self._rng = init.as_generator(rng)
        self._saved = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._saved = "identity" if self.keeps_activations else None
            return x
        seed = int(self._rng.integers(0, 2**63))
        y, mask = _C.dropout_forward(x, self.p, seed)
        self._saved = mask if self.keeps_activations else None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        mask, self._saved = self._saved, None
        if isinstance(mask, str):
            return grad_out
        return _C.dropout_backward(grad_out, mask, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
