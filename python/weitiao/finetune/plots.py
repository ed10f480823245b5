"""Training curves like d2l's and confusion matrices (matplotlib, an optional extra)."""
from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # picks a non-interactive backend when headless
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib (or "
                          "pip install 'weitiao[demo]')") from None
    return plt


def plot_curves(histories: dict, title: str = "", ax=None):
    """Train loss, train accuracy and validation accuracy per epoch for one or more runs
    ({label: History}), on one axes as d2l draws them. Returns the figure."""
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for label, h in histories.items():
        epochs = np.arange(1, len(h) + 1)
        line, = ax.plot(epochs, h.loss, "-o", label=f"{label}: train loss")
        ax.plot(epochs, h.train_accuracy, "--s", color=line.get_color(),
                label=f"{label}: train acc")
        if any(v is not None for v in h.val_accuracy):
            ax.plot(epochs, [np.nan if v is None else v for v in h.val_accuracy], ":^",
                    color=line.get_color(), label=f"{label}: val acc")
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion(evaluation, ax=None):
    """The confusion matrix of an Evaluation, rows true class, columns predicted."""
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4 + 0.3 * len(evaluation.classes),) * 2)
    else:
        fig = ax.figure
    m = evaluation.confusion
    ax.imshow(m, cmap="Blues")
    ticks = np.arange(len(evaluation.classes))
    ax.set_xticks(ticks, evaluation.classes, rotation=45, ha="right")
    ax.set_yticks(ticks, evaluation.classes)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig
