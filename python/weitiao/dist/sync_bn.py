"""Synchronised BatchNorm for ``DataParallel(exact=False, sync_bn=True)``: every BatchNorm2d
that normalises with batch statistics does so over the whole global batch instead of the
rank's share. Forward all-reduces each channel's count, sum and sum of squares (float64);
backward all-reduces the sums of dy and dy x_hat that the input gradient needs:

    mean = S1 / n,  var = S2 / n - mean^2,  x_hat = (x - mean) / sqrt(var + eps)
    dx = weight / sqrt(var + eps) * (dy - sum(dy) / n - x_hat * sum(dy x_hat) / n)

with the sums over all ranks. The weight and bias gradients stay local sums (the step
all-reduces them with every other gradient). The C kernels are used unchanged: forward
normalises with the global statistics through the eval kernel.

>>> import numpy as np
>>> from weitiao.nn import BatchNorm2d
>>> x = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
>>> bn = BatchNorm2d(2)
>>> with SyncBatchNorm(None, bn):   # one process: the usual batch statistics
...     y = bn(x)
>>> bool(np.allclose(y, BatchNorm2d(2)(x), atol=1e-6))
True
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import _C
from ..nn.norm import BatchNorm2d

_AXES = (0, 2, 3)


def _allreduce(comm, values: np.ndarray) -> np.ndarray:
    if comm is None:
        return values
    from mpi4py import MPI

    out = np.empty_like(values)
    comm.Allreduce([values, MPI.DOUBLE], [out, MPI.DOUBLE], op=MPI.SUM)
    return out


def _forward(m: BatchNorm2d, comm, x: np.ndarray) -> np.ndarray:
    if not m.uses_batch_stats():
        return BatchNorm2d.forward(m, x)
    if np.ndim(x) != 4 or np.shape(x)[1] != m.num_features:
        raise ValueError(f"BatchNorm2d({m.num_features}): expected input "
                         f"(N, {m.num_features}, H, W), got shape {np.shape(x)}")
    c = m.num_features
    local = np.empty(2 * c + 1)
    local[0] = x.shape[0] * x.shape[2] * x.shape[3]
    local[1:c + 1] = x.sum(axis=_AXES, dtype=np.float64)
    local[c + 1:] = np.einsum("nchw,nchw->c", x, x, dtype=np.float64)
    total = _allreduce(comm, local)
    n = total[0]
    if n < 2:
        raise ValueError(f"BatchNorm2d({c}) with synchronised statistics: expected more "
                         f"than 1 value per channel over all ranks, got {int(n)}")
    mean = total[1:c + 1] / n
    var = np.maximum(total[c + 1:] / n - mean * mean, 0.0)
    if m.training and m.track_running_stats:
        m.num_batches_tracked[...] += 1
        momentum = m.momentum if m.momentum is not None else \
            1.0 / float(m.num_batches_tracked)
        m.running_mean[...] = (1 - momentum) * m.running_mean + momentum * mean
        m.running_var[...] = (1 - momentum) * m.running_var + momentum * var * n / (n - 1)
    mean32, var32 = mean.astype(np.float32), var.astype(np.float32)
    y = _C.batch_norm2d_forward_eval(x, m._data(m.weight), m._data(m.bias), mean32, var32,
                                     eps=m.eps)
    invstd = (1.0 / np.sqrt(var + m.eps)).astype(np.float32)
    m._saved = (x, mean32, invstd, ("sync", n)) if m.keeps_activations else None
    return y


def _backward(m: BatchNorm2d, comm, grad_out: np.ndarray):
    saved = m._saved
    if saved is None or not isinstance(saved[3], tuple):
        return BatchNorm2d.backward(m, grad_out)
    x, mean, invstd, (_, n) = saved
    m._saved = None
    shape = (1, -1, 1, 1)
    x_hat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    sums = np.concatenate([grad_out.sum(axis=_AXES, dtype=np.float64),
                           np.einsum("nchw,nchw->c", grad_out, x_hat, dtype=np.float64)])
    c = m.num_features
    if m.bias is not None and m.bias.requires_grad:
        m.bias.grad_buffer()[...] += sums[:c].astype(np.float32)
    if m.weight is not None and m.weight.requires_grad:
        m.weight.grad_buffer()[...] += sums[c:].astype(np.float32)
    if not m.input_needs_grad:
        return None
    total = _allreduce(comm, sums) / n
    scale = invstd if m.weight is None else invstd * m.weight.data
    dx = scale.reshape(shape) * (grad_out - total[:c].astype(np.float32).reshape(shape)
                                 - x_hat * total[c:].astype(np.float32).reshape(shape))
    return np.ascontiguousarray(dx, dtype=np.float32)


class SyncBatchNorm:
    """Within the ``with`` block, the BatchNorm2d layers of ``model`` share their batch
    statistics across the ranks of ``comm`` (None: one process, the usual statistics).
    Every rank must run the same forward and backward calls, each with at least one
    sample. Frozen and eval-mode layers are left as they are."""

    def __init__(self, comm, model):
        self.comm = comm
        self.norms = [m for m in model.modules() if isinstance(m, BatchNorm2d)]

    def __enter__(self) -> "SyncBatchNorm":
        for m in self.norms:
            object.__setattr__(m, "forward", partial(_forward, m, self.comm))
            object.__setattr__(m, "backward", partial(_backward, m, self.comm))
        return self

    def __exit__(self, *exc) -> None:
        for m in self.norms:
            m.__dict__.pop("forward", None)
            m.__dict__.pop("backward", None)
