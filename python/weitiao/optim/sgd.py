"""SGD with parameter groups, torch.optim.SGD's semantics, one C call per tensor."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .. import _C
from ..nn.module import Parameter

_DEFAULTS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")


class SGD:
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    ``params`` is an iterable of Parameters or of dicts (parameter groups) with a
    ``"params"`` list and any of the options overriding the defaults, e.g. the body at a
    small learning rate and a new head at ten times that:

    >>> opt = SGD([{"params": body_params}, {"params": head_params, "lr": 0.01}],
    ...           lr=0.001, momentum=0.9, weight_decay=1e-3)  # doctest: +SKIP

    Parameters whose ``grad`` is None (frozen or unused) are skipped, as in PyTorch.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        self.defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                             weight_decay=weight_decay, nesterov=nesterov)
        items = list(params)
        if not items:
            raise ValueError("SGD: got an empty parameter list")
        groups = items if isinstance(items[0], dict) else [{"params": items}]
        self.param_groups: list[dict] = []
        seen: set[int] = set()
        for i, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"SGD: parameter group {i} must be a dict with a 'params' list")
            unknown = set(group) - set(_DEFAULTS) - {"params", "name", "initial_lr",
                                                     "max_lr", "min_lr"}
            if unknown:
                raise ValueError(f"SGD: parameter group {i} has unknown options {sorted(unknown)}")
            full = {**self.defaults, **group, "params": list(group["params"])}
            for p in full["params"]:
                if not isinstance(p, Parameter):
                    raise TypeError(f"SGD: parameter group {i} holds a {type(p).__name__}, "
                                    f"expected weitiao.nn.Parameter")
                if id(p) in seen:
                    raise ValueError(f"SGD: a parameter appears in more than one group "
                                     f"(group {i})")
                seen.add(id(p))
            self._check(full, i)
            self.param_groups.append(full)
        self.state: dict[int, np.ndarray] = {}

    @staticmethod
    def _check(group: dict, i: int) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            if not group[key] >= 0.0:
                raise ValueError(f"SGD: group {i}: {key} must be >= 0, got {group[key]}")
            if group[key] == math.inf:
                raise ValueError(f"SGD: group {i}: {key} must be finite, got {group[key]}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: group {i}: Nesterov momentum requires a momentum > 0 and "
                             f"zero dampening")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter in every group."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0.0)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue
                buf = self.state.get(id(p))
                first = buf is None
                if momentum != 0.0 and first:
                    buf = np.empty_like(p.data)
                    self.state[id(p)] = buf
                _C.sgd_step(p.data, p.grad, buf if momentum != 0.0 else None,
                            lr=group["lr"], momentum=momentum, dampening=group["dampening"],
                            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
                            first_step=first)

    def state_dict(self) -> dict:
        """Momentum buffers by (group, index) and the group options, for checkpoints."""
        buffers = {}
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if id(p) in self.state:
                    buffers[f"{gi}.{pi}"] = self.state[id(p)]
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"momentum_buffers": buffers, "param_groups": groups}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, for the same parameter layout."""
        groups = state["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"SGD.load_state_dict: expected {len(self.param_groups)} parameter "
                             f"groups, got {len(groups)}")
        for group, saved in zip(self.param_groups, groups):
            group.update(saved)
        self.state = {}
        for key, buf in state["momentum_buffers"].items():
            gi, pi = (int(i) for i in key.split("."))
            p = self.param_groups[gi]["params"][pi]
            if np.shape(buf) != p.shape:
                raise ValueError(f"SGD.load_state_dict: momentum buffer {key}: expected shape "
                                 f"{p.shape}, got {np.shape(buf)}")
            self.state[id(p)] = np.ascontiguousarray(buf, dtype=np.float32).copy()
