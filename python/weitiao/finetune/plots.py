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


def plot_curves(histories: dict, title: str = ""):
    """Per-epoch curves of one or more runs ({label: History}) in two panels: loss (train
    solid, validation dotted) and accuracy (train dashed, validation dotted), one colour
    per run, whole-number epoch ticks, and the legend below the panels, off the data.
    Epochs of LP-FT's head stage are shaded. Returns the figure."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    for label, h in histories.items():
        epochs = np.arange(1, len(h) + 1)
        line, = loss_ax.plot(epochs, h.loss, "-o", ms=3, label=f"{label}: train")
        colour = line.get_color()
        acc_ax.plot(epochs, h.train_accuracy, "--s", ms=3, color=colour)
        if any(v is not None for v in h.val_accuracy):
            loss_ax.plot(epochs, [np.nan if v is None else v for v in h.val_loss], ":^",
                         ms=3, color=colour, label=f"{label}: validation")
            acc_ax.plot(epochs, [np.nan if v is None else v for v in h.val_accuracy], ":^",
                        ms=3, color=colour)
        head = [e.epoch for e in h.epochs if e.stage == "head"]
        if head:
            for ax in (loss_ax, acc_ax):
                ax.axvspan(min(head) - 0.5, max(head) + 0.5, color=colour, alpha=0.08)
    for ax, name in ((loss_ax, "loss (cross-entropy)"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    handles, labels = loss_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3),
               fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 * ((len(labels) + 2) // 3), 1, 1))
    return fig


def plot_confusion(evaluation, ax=None, title: str = ""):
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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
