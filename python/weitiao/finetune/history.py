"""Per-epoch training records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class EpochRecord:
    """One epoch of fit: mean training loss and accuracy, validation accuracy and loss (None
    without val), images/s, wall seconds, each parameter group's lr, whether Ctrl-C cut it
    short, and the stage ("head" for fit's head_epochs, "all" otherwise)."""

    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    val_loss: float | None
    examples_per_sec: float
    seconds: float
    lrs: list[float]
    interrupted: bool = False
    stage: str = "all"  # "head": an LP-FT epoch that trained the new head only


@dataclass
class History:
    """What ``fit`` did, one record per epoch (an epoch stopped by Ctrl-C is marked
    ``interrupted`` and counts only the batches that finished).

    >>> h.loss, h.val_accuracy  # doctest: +SKIP
    ([0.62, 0.41], [0.81, 0.86])
    """

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None  # the best validation epoch (1-based) of the last fit

    def __len__(self) -> int:
        return len(self.epochs)

    def _column(self, name: str) -> list:
        return [getattr(e, name) for e in self.epochs]

    @property
    def loss(self) -> list[float]:
        return self._column("loss")

    @property
    def train_accuracy(self) -> list[float]:
        return self._column("train_accuracy")

    @property
    def val_accuracy(self) -> list[float | None]:
        return self._column("val_accuracy")

    @property
    def val_loss(self) -> list[float | None]:
        return self._column("val_loss")

    @property
    def examples_per_sec(self) -> list[float]:
        return self._column("examples_per_sec")

    @property
    def seconds(self) -> list[float]:
        return self._column("seconds")

    def to_dict(self) -> dict:
        return {"epochs": [asdict(e) for e in self.epochs], "best_epoch": self.best_epoch}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls([EpochRecord(**e) for e in d.get("epochs", [])], d.get("best_epoch"))

    def __str__(self) -> str:
        rows = ["epoch   loss  train acc  val acc   img/s   seconds"]
        for e in self.epochs:
            val = f"{e.val_accuracy:7.3f}" if e.val_accuracy is not None else "      -"
            mark = " (interrupted)" if e.interrupted else ""
            rows.append(f"{e.epoch:5d} {e.loss:6.3f} {e.train_accuracy:10.3f} {val}  "
                        f"{e.examples_per_sec:6.1f} {e.seconds:9.1f}{mark}")
        return "\n".join(rows)
