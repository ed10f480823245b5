"""Softmax cross-entropy loss."""
from __future__ import annotations

import numpy as np

from .. import _C


class CrossEntropyLoss:
    """Mean softmax cross-entropy over integer labels, with PyTorch's ``label_smoothing``.

    Calling it returns the loss (a float) and keeps the gradient of that loss w.r.t. the
    logits; ``backward()`` returns it, to feed into the model's ``backward``.

    >>> loss_fn = CrossEntropyLoss()
    >>> loss = loss_fn(np.zeros((2, 3), np.float32), np.array([0, 2]))
    >>> round(loss, 4), loss_fn.backward().shape
    (1.0986, (2, 3))
    """

    def __init__(self, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self._grad = None

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> float:
        loss, self._grad = _C.cross_entropy(logits, labels, self.label_smoothing)
        return loss

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("CrossEntropyLoss.backward: call the loss on logits first")
        grad, self._grad = self._grad, None
        return grad
