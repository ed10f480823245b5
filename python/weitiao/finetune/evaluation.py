"""What ``FineTuner.evaluate`` returns: predictions, class probabilities and the metrics of
a classifier on a labelled dataset, and test-time augmentation of a preprocessed batch."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TTA_VIEWS = {None: 1, "flip": 2, "dihedral": 8}


def tta_views(x: np.ndarray, tta: str | None) -> list[np.ndarray]:
    """The views of a preprocessed (N, C, H, W) batch that test-time augmentation averages
    over: None, the batch; "flip", it and its left-right mirror; "dihedral", the four
    90-degree turns of each (square inputs only).

    >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    >>> [v[0, 0].tolist() for v in tta_views(x, "flip")]
    [[[0.0, 1.0], [2.0, 3.0]], [[1.0, 0.0], [3.0, 2.0]]]
    """
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta: expected None, 'flip' or 'dihedral', got {tta!r}")
    if tta is None:
        return [x]
    flips = [x, x[..., ::-1]]
    if tta == "flip":
        return [np.ascontiguousarray(v) for v in flips]
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"tta='dihedral' turns images by 90 degrees and needs square inputs, "
                         f"got {x.shape[-2]}x{x.shape[-1]}")
    return [np.ascontiguousarray(np.rot90(v, k, axes=(-2, -1))) for v in flips for k in range(4)]


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a
    random negative, ties counting half (the Mann-Whitney statistic); NaN without both.

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts, ends):  # tied scores share their average rank (1-based)
        ranks[order[s:e]] = (s + e + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


@dataclass
class Evaluation:
    """A model on a labelled dataset: ``accuracy``, mean cross-entropy ``loss``, the
    ``confusion`` matrix (rows: true class, columns: predicted), and per sample the true
    ``labels``, the ``predictions`` and the class ``probabilities`` (N, K), from which the
    other metrics follow. Classes absent from the data get NaN recall (and NaN precision
    when never predicted); the macro averages skip NaN.

    >>> ev = Evaluation.from_probabilities(np.array([[.9, .1], [.4, .6], [.2, .8]]),
    ...                                    np.array([0, 0, 1]), ["ok", "bad"])
    >>> ev.accuracy, ev.recall, ev.roc_auc
    (0.6666666666666666, {'ok': 0.5, 'bad': 1.0}, 1.0)
    """

    accuracy: float
    loss: float
    confusion: np.ndarray
    classes: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def from_probabilities(cls, probabilities: np.ndarray, labels: np.ndarray,
                           classes: list[str]) -> "Evaluation":
        """The Evaluation of class probabilities (N, K) against true labels (N,); the loss
        is the mean negative log probability of the true class."""
        probs = np.asarray(probabilities, np.float64)
        labels = np.asarray(labels, np.int64)
        k = len(classes)
        if probs.shape != (len(labels), k):
            raise ValueError(f"Evaluation: probabilities have shape {probs.shape}, expected "
                             f"({len(labels)}, {k}) for {len(labels)} labels and {k} classes")
        preds = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
        confusion = np.zeros((k, k), np.int64)
        np.add.at(confusion, (labels, preds), 1)
        n = max(len(labels), 1)
        true_p = probs[np.arange(len(labels)), labels]
        loss = float(-np.log(np.maximum(true_p, 1e-300)).sum() / n)
        return cls(float(np.trace(confusion) / n), loss, confusion, list(classes), labels,
                   preds, probs)

    def _per_class(self, values: np.ndarray) -> dict[str, float]:
        return {c: float(v) for c, v in zip(self.classes, values)}

    @property
    def recall(self) -> dict[str, float]:
        """Per class: the fraction of its samples predicted as it (per-class accuracy)."""
        return self._per_class(_ratio(np.diag(self.confusion), self.confusion.sum(axis=1)))

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        """The same as ``recall``."""
        return self.recall

    @property
    def precision(self) -> dict[str, float]:
        """Per class: the fraction of the samples predicted as it that are it."""
        return self._per_class(_ratio(np.diag(self.confusion), self.confusion.sum(axis=0)))

    @property
    def f1(self) -> dict[str, float]:
        """Per class: the harmonic mean of precision and recall (0 when both are 0)."""
        tp = np.diag(self.confusion).astype(np.float64)
        den = self.confusion.sum(axis=0) + self.confusion.sum(axis=1)
        return self._per_class(np.where(den > 0, 2 * tp / np.maximum(den, 1), np.nan))

    @property
    def balanced_accuracy(self) -> float:
        """The mean recall over the classes present."""
        return float(np.nanmean(list(self.recall.values())))

    @property
    def macro_f1(self) -> float:
        """The mean F1 over the classes present or predicted."""
        return float(np.nanmean(list(self.f1.values())))

    def _positive(self, positive) -> np.ndarray:
        names = [positive] if isinstance(positive, (str, int)) else list(positive)
        mask = np.zeros(len(self.classes), bool)
        for p in names:
            if isinstance(p, str):
                if p not in self.classes:
                    raise ValueError(f"Evaluation: unknown class {p!r}; classes are "
                                     f"{self.classes}")
                mask[self.classes.index(p)] = True
            else:
                if not 0 <= int(p) < len(self.classes):
                    raise ValueError(f"Evaluation: class index {p} is outside "
                                     f"[0, {len(self.classes)})")
                mask[int(p)] = True
        return mask

    def positive_probability(self, positive) -> np.ndarray:
        """Per sample, the summed probability of the classes in ``positive`` (names or
        indices), e.g. P(defective) = P("2/3") + P("1") on elpv."""
        return self.probabilities[:, self._positive(positive)].sum(axis=1)

    def binary_accuracy(self, positive, threshold: float = 0.5) -> float:
        """Accuracy of the two-way question "is the class in ``positive``?", answered yes
        when the positive classes' summed probability is at least ``threshold``."""
        truth = self._positive(positive)[self.labels]
        return float(np.mean((self.positive_probability(positive) >= threshold) == truth))

    def binary_roc_auc(self, positive) -> float:
        """ROC AUC of the positive classes' summed probability as the score for "is the
        class in ``positive``?"."""
        return roc_auc(self.positive_probability(positive), self._positive(positive)[self.labels])

    @property
    def roc_auc(self) -> float | None:
        """For two classes, the ROC AUC of the second class's probability; None otherwise
        (use ``binary_roc_auc`` to threshold a group of classes)."""
        return self.binary_roc_auc(1) if len(self.classes) == 2 else None

    def summary(self) -> dict:
        """The headline metrics as plain floats (JSON-ready)."""
        return {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "macro_f1": self.macro_f1, "loss": self.loss, "recall": self.recall,
                "precision": self.precision}

    def __str__(self) -> str:
        lines = [f"accuracy {self.accuracy:.4f}  balanced {self.balanced_accuracy:.4f}  "
                 f"macro-F1 {self.macro_f1:.4f}  loss {self.loss:.4f}"]
        p = self.precision
        lines += [f"  {c}: recall {r:.4f}  precision {p[c]:.4f}" for c, r in self.recall.items()]
        return "\n".join(lines)
