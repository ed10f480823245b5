"""The d2l experiment as one call: fine-tuning vs training from scratch (vs a linear probe
on a frozen backbone) under the same epoch budget and the same augmentation."""
from __future__ import annotations

from dataclasses import dataclass, field

from .evaluation import Evaluation
from .history import History


@dataclass
class Comparison:
    """Per-run histories, final evaluations and wall times, a text table and (with
    matplotlib) a figure of the curves."""

    histories: dict[str, History] = field(default_factory=dict)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    tuners: dict = field(default_factory=dict, repr=False)

    def table(self) -> str:
        """A markdown table: accuracy, balanced accuracy, macro-F1, per-class accuracy
        (recall), wall time (training and the final evaluation), images/s."""
        runs = list(self.evaluations)
        if not runs:
            return "(no runs)"
        classes = self.evaluations[runs[0]].classes
        head = ["run", "accuracy", "balanced", "macro-F1", *[f"acc[{c}]" for c in classes],
                "seconds", "train img/s"]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in runs:
            ev, h = self.evaluations[r], self.histories[r]
            images = sum(e.examples_per_sec * e.seconds for e in h.epochs)
            speed = images / max(sum(h.seconds), 1e-9)
            cells = [r, f"{ev.accuracy:.4f}", f"{ev.balanced_accuracy:.4f}",
                     f"{ev.macro_f1:.4f}",
                     *[f"{ev.per_class_accuracy[c]:.3f}" for c in classes],
                     f"{self.seconds[r]:.1f}", f"{speed:.1f}"]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def figure(self, title: str = "fine-tuning vs scratch"):
        """The runs' training curves on one matplotlib figure (see plots.plot_curves)."""
        from .plots import plot_curves

        return plot_curves(self.histories, title=title)

    def __str__(self) -> str:
        return self.table()


def compare(source_model, train, val, *, classes=None, epochs: int = 8, lr: float | None = None,
            scratch_lr: float | None = None, head_epochs: int = 0, augment="light",
            scheduler="warmup_cosine", linear_probe: bool = True, monitor="val",
            batch_size: int = 32, image_size: int | None = None, tta: str | None = None,
            seed: int = 0, verbose: bool = True, **fit_kwargs) -> Comparison:
    """Train three arms under one epoch budget and evaluate each on ``val``:

    - "fine-tune": the pretrained body at ``lr`` (default the source model's
      ``config.finetune_lr``: 1e-2 for EfficientNet-Lite0, MobileNetV2's own from experiment
      9) with its bottom half frozen (FineTuner's default freeze, experiment 7), the new head
      at 10x; with
      ``head_epochs`` > 0, after that many epochs of the head alone on cached features
      (LP-FT, off by default: it did worse in experiment 5);
    - "scratch": the same architecture from a random initialisation, all at
      ``scratch_lr`` (default ``lr``, or 1e-2);
    - "linear probe" (``linear_probe=True``): the backbone frozen, its features cached, the
      head at 10x ``lr`` (or 10x 1e-2) for ``epochs + head_epochs`` epochs.

    All three use the ``augment`` preset (default "light": the whole image, small shifts,
    scale and rotation, flips) with its evaluation pipeline, and ``scheduler`` (default
    warmup + cosine, per batch); the defaults were chosen on validation splits of three
    small targets (docs/experiments.md, experiment 5). ``monitor``: what fit evaluates
    after each epoch for the curves: "val", a fraction of ``train`` to hold out, or None.
    ``image_size`` trains at another input size than pretraining; ``tta`` is passed to the
    final evaluation; other keyword arguments go to ``fit``.

    >>> result = compare(efficientnet_lite0(weights="imagenet"), train, val, epochs=3)
    >>> print(result.table()); result.figure().savefig("curves.png")  # doctest: +SKIP
    """
    import time

    from ..models.config import DEFAULT_LR
    from .tuner import FineTuner

    classes = classes if classes is not None else getattr(train, "classes", None)
    if classes is None:
        raise ValueError("compare: pass classes=[...] or a dataset with .classes")
    if not (monitor in ("val", None) or isinstance(monitor, float)):
        raise ValueError(f"compare: monitor must be 'val', a fraction of train or None, got "
                         f"{monitor!r}")
    fixed_lr = lr if lr is not None else DEFAULT_LR
    runs = {
        "fine-tune": (dict(lr=lr), dict(epochs=epochs, head_epochs=head_epochs)),
        "scratch": (dict(lr=scratch_lr if scratch_lr is not None else fixed_lr,
                         from_scratch=True), dict(epochs=epochs)),
    }
    if linear_probe:
        runs["linear probe"] = (dict(lr=fixed_lr, freeze="backbone"),
                                dict(epochs=epochs + head_epochs))
    result = Comparison()
    for name, (options, budget) in runs.items():
        if verbose:
            print(f"== {name}")
        tuner = FineTuner(source_model, classes=classes, seed=seed, image_size=image_size,
                          augment=augment, **options)
        began = time.perf_counter()
        tuner.fit(train, val=val if monitor == "val" else monitor, batch_size=batch_size,
                  scheduler=scheduler, verbose=verbose, **budget, **fit_kwargs)
        result.evaluations[name] = tuner.evaluate(val, batch_size=max(batch_size, 64), tta=tta)
        result.seconds[name] = time.perf_counter() - began
        result.histories[name] = tuner.history
        result.tuners[name] = tuner
    return result
