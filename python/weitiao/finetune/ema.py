"""An exponential moving average of a model's weights, evaluated in their place."""
from __future__ import annotations

import contextlib

import numpy as np


class WeightEMA:
    """The moving average of ``model``'s parameters (Polyak averaging, as timm's
    ``ModelEmaV2``): after update t the average moves towards the live weights by
    ``1 - d_t`` with ``d_t = min(decay, (1 + t) / (10 + t))``, so it follows them closely
    in the first steps of a short fine-tune and averages over about ``1 / (1 - decay)``
    steps later. Buffers (BatchNorm running statistics) stay the model's own.

    >>> from weitiao import nn
    >>> layer = nn.Linear(2, 1, rng=0)
    >>> ema = WeightEMA(layer, decay=0.9)
    >>> layer.weight.data[...] = 1.0; ema.update()
    >>> bool(np.all(ema.shadow[0] < 1.0))
    True
    """

    def __init__(self, model, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema: the decay must be in (0, 1), e.g. 0.999, got {decay}")
        self.decay = float(decay)
        self.steps = 0
        self.params = list(model.parameters())
        self.shadow = [p.data.copy() for p in self.params]

    def update(self) -> None:
        """Move the average towards the current weights (call after each optimizer step)."""
        self.steps += 1
        d = np.float32(min(self.decay, (1 + self.steps) / (10 + self.steps)))
        for s, p in zip(self.shadow, self.params):
            if p.requires_grad:
                s *= d
                s += (1 - d) * p.data

    def copy_to_model(self) -> None:
        """Put the averaged weights into the model for good."""
        for p, s in zip(self.params, self.shadow):
            p.data[...] = s

    @contextlib.contextmanager
    def applied(self):
        """The averaged weights in the model for the block, the live ones back after."""
        live = [p.data.copy() for p in self.params]
        self.copy_to_model()
        try:
            yield
        finally:
            for p, v in zip(self.params, live):
                p.data[...] = v
