"""A training step whose loss is not finite leaves the model as it was before the batch.

The forward pass of a training step already moves the BatchNorm running statistics and the
dropout generators, so both are saved before it (a few small arrays) and put back when the
loss comes out NaN or Inf; the parameters and momentum buffers are untouched because the
optimizer has not stepped yet. The error then says why: non-finite input, or divergence.
"""
from __future__ import annotations

import numpy as np

from .checkpoint import generators


class BatchGuard:
    """Saves and restores the buffers and random generators of ``modules`` (the part of the
    model a training step's forward runs through). Built once per epoch: each step's
    :meth:`save` copies into arrays allocated here, so the hot loop allocates nothing.

    >>> guard = BatchGuard([model])  # doctest: +SKIP
    >>> guard.save(); logits = model(x)  # doctest: +SKIP
    >>> guard.restore()  # the running statistics as before model(x)  # doctest: +SKIP
    """

    def __init__(self, modules):
        self._buffers = [(b, np.empty_like(b)) for m in modules for _, b in m.named_buffers()]
        self._generators = [g for m in modules for g in generators(m)]
        self._states = []

    def save(self) -> None:
        for buf, saved in self._buffers:
            np.copyto(saved, buf)
        self._states = [g.bit_generator.state for g in self._generators]

    def restore(self) -> None:
        for buf, saved in self._buffers:
            np.copyto(buf, saved)
        for gen, state in zip(self._generators, self._states):
            gen.bit_generator.state = state


KEPT = "the model was left as it was before this batch (BatchNorm statistics included)"


def non_finite_images(x: np.ndarray) -> list[int]:
    """Indices of the images of batch ``x`` (N, ...) holding NaN or Inf."""
    if x.size == 0:
        return []
    return np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)).tolist()


def check_finite_input(x: np.ndarray) -> None:
    """Raise a ValueError naming the images of batch ``x`` that hold NaN or Inf, if any."""
    bad = non_finite_images(x)
    if bad:
        raise ValueError(f"fit: non-finite input: images {bad} of this batch (of "
                         f"{len(x)}) hold NaN or Inf, so the loss is not finite; {KEPT}; "
                         f"check those files or the transform") from None


def check_finite_output(probs: np.ndarray, x: np.ndarray, what: str, first: int) -> None:
    """After an evaluation forward: when the probabilities of batch ``x`` (whose first
    sample is number ``first``) are not all finite, raise a ValueError naming the input
    images that hold NaN or Inf. Only ``probs`` (N, K) is scanned unless something is
    wrong."""
    if np.isfinite(probs).all():
        return
    bad = [first + i for i in non_finite_images(x)]
    if bad:
        raise ValueError(f"{what}: non-finite input: images {bad} hold NaN or Inf after "
                         f"preprocessing, so their class probabilities would be NaN; check "
                         f"those files or the transform")
    raise FloatingPointError(f"{what}: the model gave non-finite outputs on finite images "
                             f"{first}..{first + len(x) - 1}: its weights hold NaN or Inf "
                             f"(a diverged training run?)")


def diverged_error(loss: float, param_groups: list[dict]) -> FloatingPointError:
    """The error for a finite batch whose loss came out ``loss`` (NaN or Inf)."""
    lrs = ", ".join(f"{g.get('name', i)} {g['lr']:g}" for i, g in enumerate(param_groups))
    return FloatingPointError(f"fit: training diverged: the loss became {loss} at learning "
                              f"rates {lrs}; {KEPT}; try a lower learning rate (lr)")
