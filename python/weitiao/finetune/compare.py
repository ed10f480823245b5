"""The d2l experiment as one call: fine-tuning vs training from scratch (vs a linear probe
on a frozen backbone) under the same epoch budget."""
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
        """A markdown table: accuracy, per-class accuracy, wall time, images/s."""
        runs = list(self.evaluations)
        if not runs:
            return "(no runs)"
        classes = self.evaluations[runs[0]].classes
        head = ["run", "accuracy", *[f"acc[{c}]" for c in classes], "seconds", "train img/s"]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in runs:
            ev, h = self.evaluations[r], self.histories[r]
            images = sum(e.examples_per_sec * e.seconds for e in h.epochs)
            speed = images / max(sum(h.seconds), 1e-9)
            cells = [r, f"{ev.accuracy:.4f}",
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


def compare(source_model, train, val, *, classes=None, epochs: int = 5, lr: float = 1e-3,
            scratch_lr: float | None = None, linear_probe: bool = True, batch_size: int = 32,
            image_size: int | None = None, seed: int = 0, verbose: bool = True,
            **fit_kwargs) -> Comparison:
    """Train "fine-tune" (pretrained body at ``lr``, new head at 10x), "scratch" (same
    architecture, random init, all at ``scratch_lr``, default 10x ``lr`` as d2l) and,
    optionally, "linear probe" (frozen backbone, cached features, head at 10x ``lr``) for
    the same number of epochs, and evaluate each on ``val``. ``image_size`` trains all three
    at another input size than pretraining; other keyword arguments go to ``fit``.

    >>> result = compare(efficientnet_lite0(weights="imagenet"), train, val, epochs=3)
    >>> print(result.table()); result.figure().savefig("curves.png")  # doctest: +SKIP
    """
    import time

    from .tuner import FineTuner

    classes = classes if classes is not None else getattr(train, "classes", None)
    if classes is None:
        raise ValueError("compare: pass classes=[...] or a dataset with .classes")
    runs = {
        "fine-tune": dict(lr=lr),
        "scratch": dict(lr=scratch_lr if scratch_lr is not None else 10 * lr,
                        from_scratch=True),
    }
    if linear_probe:
        runs["linear probe"] = dict(lr=lr, freeze="backbone")
    result = Comparison()
    for name, options in runs.items():
        if verbose:
            print(f"== {name}")
        tuner = FineTuner(source_model, classes=classes, seed=seed, image_size=image_size,
                          **options)
        began = time.perf_counter()
        tuner.fit(train, epochs, val=val, batch_size=batch_size, verbose=verbose, **fit_kwargs)
        result.seconds[name] = time.perf_counter() - began
        result.histories[name] = tuner.history
        result.evaluations[name] = tuner.evaluate(val, batch_size=max(batch_size, 64))
        result.tuners[name] = tuner
    return result
