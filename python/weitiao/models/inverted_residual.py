"""The inverted residual block that MobileNetV2 and EfficientNet-Lite share (Sandler et al.,
2018): a main path (1x1 expand, depthwise kxk, 1x1 linear projection), with the input added
back when the stride is 1 and the channels match. Subclasses build the layers under their
source's parameter names and list the main path in ``_main``; this class runs it forward and
backward, with optional stochastic depth on the residual branch (EfficientNet's "drop
connect")."""
from __future__ import annotations

import numpy as np

from .. import _C
from ..nn.module import (Module, backward_chain, check_planned, forward_chain,
                         mark_if_called_directly, plan_chain)


class InvertedResidualBase(Module):
    """out = main(x) (+ x when ``has_skip``). ``drop_connect_rate`` > 0 drops the main branch
    per sample in training (scaling the kept ones by 1 / (1 - rate)), drawing from ``rng``,
    except in a frozen block, which stays a fixed feature extractor."""

    def __init__(self, has_skip: bool, drop_connect_rate: float = 0.0,
                 rng: np.random.Generator | None = None):
        super().__init__()
        self.has_skip = bool(has_skip)
        self.drop_connect_rate = float(drop_connect_rate)
        self._rng = rng
        self._keep = None

    def _main(self) -> list[Module]:
        """The main path's modules, in order."""
        raise NotImplementedError(f"{type(self).__name__} does not list its main path")

    def plan_backward(self, input_needs_grad: bool) -> bool:
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        self._main_needs = plan_chain(self._main(), input_needs_grad)
        out_needs = self._main_needs or (self.has_skip and input_needs_grad)
        object.__setattr__(self, "keeps_activations", self.training and out_needs)
        return out_needs

    def forward(self, x: np.ndarray) -> np.ndarray:
        mark_if_called_directly(self)
        out = forward_chain(self._main(), x)
        if not self.has_skip:
            return out
        self._keep = None
        if self.training and not self.frozen and self.drop_connect_rate > 0:
            p = self.drop_connect_rate
            keep = (self._rng.random(x.shape[0]) >= p).astype(np.float32) / (1.0 - p)
            out = out * keep[:, None, None, None]
            self._keep = keep if self.keeps_activations else None
        return _C.add(out, x)

    def backward(self, grad_out: np.ndarray):
        check_planned(self)
        grad_main = grad_out
        if self._keep is not None:
            grad_main = grad_out * self._keep[:, None, None, None]
            self._keep = None
        gx = backward_chain(self._main(), grad_main) if self._main_needs else None
        if not self.input_needs_grad:
            return None
        if self.has_skip:
            return grad_out if gx is None else _C.add(gx, grad_out)
        return gx
