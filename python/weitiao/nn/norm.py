"""BatchNorm2d over the C kernels."""
from __future__ import annotations

import numpy as np

from .. import _C
from .module import Module, Parameter


class BatchNorm2d(Module):
    """Batch normalisation over channels, PyTorch's semantics and state-dict names
    (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``).

    In training mode it normalises with batch statistics and updates the running ones
    (``momentum=None`` gives a cumulative average). In eval mode, or when frozen
    (:meth:`Module.freeze`), it normalises with the running statistics and never changes
    them.

    >>> bn = BatchNorm2d(8)
    >>> bn(np.ones((2, 8, 4, 4), np.float32)).shape
    (2, 8, 4, 4)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm2d: num_features must be positive, got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, np.float32))
            self.register_buffer("running_var", np.ones(num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        self._saved = None

    def uses_batch_stats(self) -> bool:
        """Whether forward normalises with the batch's statistics (training, not frozen)."""
        return (self.training and not self.frozen) or not self.track_running_stats

    def _data(self, p):
        return p.data if p is not None else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if np.ndim(x) != 4 or np.shape(x)[1] != self.num_features:
            raise ValueError(f"BatchNorm2d({self.num_features}): expected input "
                             f"(N, {self.num_features}, H, W), got shape {np.shape(x)}")
        w, b = self._data(self.weight), self._data(self.bias)
        if self.uses_batch_stats():
            momentum = self.momentum
            rm = rv = None
            if self.training and self.track_running_stats:
                self.num_batches_tracked[...] += 1
                if momentum is None:
                    momentum = 1.0 / float(self.num_batches_tracked)
                rm, rv = self.running_mean, self.running_var
            y, mean, invstd = _C.batch_norm2d_forward_train(
                x, w, b, rm, rv, momentum=momentum if momentum is not None else 0.0,
                eps=self.eps)
            training_stats = True
        else:
            y = _C.batch_norm2d_forward_eval(x, w, b, self.running_mean, self.running_var,
                                             eps=self.eps)
            mean = invstd = None
            training_stats = False
        if self.keeps_activations:
            if not training_stats:
                mean = self.running_mean.copy()
                invstd = (1.0 / np.sqrt(self.running_var + np.float32(self.eps))).astype(
                    np.float32)
            self._saved = (x, mean, invstd, training_stats)
        else:
            self._saved = None
        return y

    def backward(self, grad_out: np.ndarray):
        self._check_saved(self._saved)
        x, mean, invstd, training_stats = self._saved
        self._saved = None
        dw = self.weight.grad_buffer() if self.weight is not None and \
            self.weight.requires_grad else None
        db = self.bias.grad_buffer() if self.bias is not None and self.bias.requires_grad \
            else None
        return _C.batch_norm2d_backward(grad_out, x, self._data(self.weight), mean, invstd,
                                        dw, db, training=training_stats,
                                        need_input_grad=self.input_needs_grad)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
