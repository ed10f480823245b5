"""Learning-rate schedules with PyTorch's closed forms, stepped once per epoch (StepLR,
CosineAnnealingLR) or once per batch (OneCycleLR, WarmupCosineLR). Each scales every parameter group's
own initial lr, so a head at 10x the body keeps its ratio."""
from __future__ import annotations

import math


class _Scheduler:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, step: int) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self) -> None:
        """Advance the schedule by one step and set each group's lr."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


class StepLR(_Scheduler):
    """lr = base * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(_Scheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * step / self.T_max)) / 2


class WarmupCosineLR(_Scheduler):
    """Linear warmup from 0 to each group's lr over ``warmup_steps``, then cosine decay to 0
    at ``total_steps`` (the fine-tuning schedule of timm and Hugging Face's
    ``get_cosine_schedule_with_warmup``); stepped once per batch.

    >>> from weitiao.optim import SGD
    >>> opt = SGD([{"params": [], "lr": 0.1}])
    >>> s = WarmupCosineLR(opt, total_steps=10, warmup_steps=2)
    >>> [round(s.lr_at(0.1, k), 4) for k in (0, 1, 2, 6, 10)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """

    def __init__(self, optimizer, total_steps: int, warmup_steps: int = 0):
        if total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError(f"WarmupCosineLR: expected total_steps >= 1 and 0 <= "
                             f"warmup_steps < total_steps, got {total_steps} and {warmup_steps}")
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, step: int) -> float:
        if step < self.warmup_steps:
            return base_lr * step / self.warmup_steps
        pct = min(step - self.warmup_steps, self.total_steps - self.warmup_steps) / \
            (self.total_steps - self.warmup_steps)
        return base_lr * (1 + math.cos(math.pi * pct)) / 2


class OneCycleLR(_Scheduler):
    """PyTorch's one-cycle policy (cosine annealing, two phases): from max_lr/div_factor up
    to max_lr over pct_start of the steps, then down to max_lr/(div_factor *
    final_div_factor). ``max_lr`` is a number or one per group; stepped once per batch.
    Momentum is not cycled (PyTorch's ``cycle_momentum=False``)."""

    def __init__(self, optimizer, max_lr, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4):
        if total_steps < 2:
            raise ValueError(f"OneCycleLR: total_steps must be >= 2, got {total_steps}")
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"OneCycleLR: expected {len(groups)} max_lr values, got "
                             f"{len(max_lrs)}")
        for group, m in zip(groups, max_lrs):
            group["initial_lr"] = m / div_factor
            group["max_lr"] = m
            group["min_lr"] = group["initial_lr"] / final_div_factor
        self.total_steps = total_steps
        self.warmup_end = float(pct_start * total_steps) - 1
        super().__init__(optimizer)

    @staticmethod
    def _cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def _apply(self) -> None:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, more than total_steps="
                             f"{self.total_steps}")
        for group in self.optimizer.param_groups:
            if step <= self.warmup_end:
                group["lr"] = self._cos(group["initial_lr"], group["max_lr"],
                                        step / self.warmup_end if self.warmup_end > 0 else 1.0)
            else:
                span = self.total_steps - 1 - self.warmup_end
                group["lr"] = self._cos(group["max_lr"], group["min_lr"],
                                        (step - self.warmup_end) / span)
