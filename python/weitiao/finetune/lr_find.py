"""The learning-rate range test (Smith, 2017; fastai's lr_find): raise the learning rate
exponentially batch by batch, record the smoothed loss, stop when it diverges, and
suggest the rate where the loss falls fastest."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


@dataclass
class LRFinderResult:
    """What lr_find measured: the body lr of each step, the smoothed loss after it, and the
    suggested rate."""

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float

    def plot(self, ax=None):
        """Smoothed loss against the (body) learning rate, log scale, suggestion marked."""
        from .plots import _pyplot

        plt = _pyplot()
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.5))
        else:
            fig = ax.figure
        ax.semilogx(self.lrs, self.losses)
        ax.axvline(self.suggestion, color="red", linestyle="--",
                   label=f"suggested lr {self.suggestion:.2g}")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("smoothed loss")
        ax.legend()
        fig.tight_layout()
        return fig


def lr_find(tuner, train, *, start_lr: float = 1e-6, end_lr: float = 1.0,
            num_steps: int = 100, batch_size: int = 32, beta: float = 0.98,
            diverge: float = 4.0, num_workers: int = 2, verbose: bool = True) -> LRFinderResult:
    """Run the range test on a copy of ``tuner``'s model and optimizer (the tuner itself is
    left untouched). Each parameter group keeps its ratio to the body lr (the head stays
    ``head_lr_mult`` times faster); the reported lr is the body's."""
    from tqdm.auto import tqdm

    from . import batches

    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_find: need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    probe = copy.deepcopy(tuner)
    ds = batches.as_dataset(train, probe.classes, "train")
    loader = batches.loader(ds, probe.preprocess(train=True), batch_size, True, True,
                            probe.seed, num_workers)
    ratios = [g["lr"] / probe.lr for g in probe.optimizer.param_groups]
    factor = (end_lr / start_lr) ** (1.0 / max(num_steps - 1, 1))
    lrs, losses = [], []
    avg, best, step, epoch = 0.0, np.inf, 0, 0
    bar = tqdm(total=num_steps, desc="lr_find", disable=not verbose)
    guard = probe._guard(probe.model)
    while step < num_steps:
        loader.set_epoch(epoch)
        for x, y in loader:
            lr = start_lr * factor ** step
            for g, r in zip(probe.optimizer.param_groups, ratios):
                g["lr"] = lr * r
            try:
                loss, _ = probe._train_step(x, y, probe.model, probe.model.backward,
                                            guard)
            except FloatingPointError:
                step = num_steps
                break
            avg = beta * avg + (1 - beta) * loss
            smoothed = avg / (1 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            step += 1
            bar.update(1)
            if step >= num_steps or smoothed > diverge * best:
                step = num_steps
                break
        epoch += 1
    bar.close()
    lrs, losses = np.array(lrs), np.array(losses)
    return LRFinderResult(lrs, losses, _suggest(lrs, losses))


def _suggest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The lr of the steepest descent of the smoothed loss (by log lr), before its
    minimum; a tenth of the minimum's lr when the curve is too short for that."""
    if len(lrs) < 5:
        return float(lrs[np.argmin(losses)] / 10) if len(lrs) else 1e-3
    end = int(np.argmin(losses)) + 1
    if end < 3:
        return float(lrs[0])
    slope = np.gradient(losses[:end], np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slope))])
