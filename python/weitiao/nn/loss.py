"""Softmax cross-entropy loss."""
from __future__ import annotations

import numpy as np

from .. import _C


class CrossEntropyLoss:
    """Mean softmax cross-entropy, as ``torch.nn.CrossEntropyLoss``: targets are integer
    class indices (N,) or class probabilities (N, K) (soft labels, e.g. raters' confidence);
    ``weight`` (K,) weighs each class (with indices the mean divides by the summed weights of
    the batch's labels, as PyTorch); ``label_smoothing`` mixes a uniform distribution into
    the targets.

    Calling it returns the loss (a float) and keeps the gradient of that loss w.r.t. the
    logits; ``backward()`` returns it, to feed into the model's ``backward``.

    >>> loss_fn = CrossEntropyLoss()
    >>> loss = loss_fn(np.zeros((2, 3), np.float32), np.array([0, 2]))
    >>> round(loss, 4), loss_fn.backward().shape
    (1.0986, (2, 3))
    >>> soft = CrossEntropyLoss(weight=[1.0, 2.0])
    >>> round(soft(np.zeros((1, 2), np.float32), np.array([[0.25, 0.75]], np.float32)), 4)
    1.213
    """

    def __init__(self, label_smoothing: float = 0.0, weight=None):
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.weight = None
        if weight is not None:
            self.weight = np.ascontiguousarray(weight, dtype=np.float32)
            if self.weight.ndim != 1 or not np.all(np.isfinite(self.weight)) \
                    or np.any(self.weight < 0):
                raise ValueError(f"CrossEntropyLoss: weight must be a 1-D array of finite "
                                 f"values >= 0, got {weight!r}")
        self._grad = None

    def __call__(self, logits: np.ndarray, targets: np.ndarray, need_grad: bool = True) -> float:
        if np.shape(logits)[:1] == (0,):
            raise ValueError("CrossEntropyLoss: an empty batch (0 rows of logits): the mean "
                             "loss over no samples is undefined (NaN); skip empty batches")
        if np.ndim(targets) == 2:
            loss, grad = _C.soft_cross_entropy(
                logits, np.ascontiguousarray(targets, dtype=np.float32), self.label_smoothing,
                need_grad, self.weight)
        else:
            loss, grad = _C.cross_entropy(logits, targets, self.label_smoothing, need_grad,
                                          self.weight)
        self._grad = grad
        return loss

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("CrossEntropyLoss.backward: call the loss on logits first")
        grad, self._grad = self._grad, None
        return grad
