"""Evaluation's metrics against scikit-learn (and by hand where it has no twin), and the
test-time augmentation views."""
import numpy as np
import pytest

from weitiao.finetune import Evaluation
from weitiao.finetune.evaluation import roc_auc, tta_views

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def random_eval(seed, n=200, k=4, absent=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % k
    logits = rng.standard_normal((n, k)) + 1.5 * np.eye(k)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Evaluation.from_probabilities(probs, labels, [f"c{i}" for i in range(k)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed):
    ev = random_eval(seed)
    y, p = ev.labels, ev.predictions
    assert ev.accuracy == pytest.approx(sklearn_metrics.accuracy_score(y, p))
    np.testing.assert_array_equal(ev.confusion, sklearn_metrics.confusion_matrix(y, p))
    assert ev.balanced_accuracy == pytest.approx(sklearn_metrics.balanced_accuracy_score(y, p))
    assert ev.macro_f1 == pytest.approx(sklearn_metrics.f1_score(y, p, average="macro"))
    np.testing.assert_allclose(list(ev.precision.values()),
                               sklearn_metrics.precision_score(y, p, average=None))
    np.testing.assert_allclose(list(ev.recall.values()),
                               sklearn_metrics.recall_score(y, p, average=None))
    assert ev.loss == pytest.approx(sklearn_metrics.log_loss(y, ev.probabilities))


def test_binary_roc_auc_and_thresholded_accuracy_match_scikit_learn():
    ev = random_eval(3)
    positive = np.isin(ev.labels, [2, 3])
    score = ev.probabilities[:, 2] + ev.probabilities[:, 3]
    assert ev.binary_roc_auc(["c2", "c3"]) == pytest.approx(
        sklearn_metrics.roc_auc_score(positive, score))
    assert ev.binary_accuracy([2, 3], threshold=0.3) == pytest.approx(
        np.mean((score >= 0.3) == positive))
    assert ev.roc_auc is None  # four classes: name the positive ones
    two = random_eval(4, k=2)
    assert two.roc_auc == pytest.approx(
        sklearn_metrics.roc_auc_score(two.labels, two.probabilities[:, 1]))


def test_roc_auc_counts_ties_half_and_needs_both_kinds():
    scores = np.array([0.5, 0.5, 0.5, 0.9, 0.1])
    truth = np.array([1, 0, 1, 1, 0])
    assert roc_auc(scores, truth) == pytest.approx(sklearn_metrics.roc_auc_score(truth, scores))
    assert np.isnan(roc_auc(scores, np.ones(5)))


def test_absent_class_is_nan_and_skipped_by_the_macro_averages():
    ev = random_eval(5, absent=1)
    assert np.isnan(ev.recall["c1"])
    present = [v for c, v in ev.recall.items() if c != "c1"]
    assert ev.balanced_accuracy == pytest.approx(np.mean(present))
    labels = [0, 2, 3] if ev.confusion[:, 1].sum() == 0 else [0, 1, 2, 3]
    assert ev.macro_f1 == pytest.approx(sklearn_metrics.f1_score(
        ev.labels, ev.predictions, labels=labels, average="macro"))


def test_bad_class_names_and_shapes_are_named():
    ev = random_eval(6)
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        ev.binary_accuracy(["nope"])
    with pytest.raises(ValueError, match=r"class index 7 is outside \[0, 4\)"):
        ev.binary_roc_auc([7])
    with pytest.raises(ValueError, match=r"probabilities have shape \(3, 2\), expected \(3, 4\)"):
        Evaluation.from_probabilities(np.ones((3, 2)) / 2, [0, 1, 2], list("abcd"))


def test_tta_views_are_the_flips_and_the_dihedral_group():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    assert len(tta_views(x, None)) == 1
    flip = tta_views(x, "flip")
    np.testing.assert_array_equal(flip[1], x[:, :, :, ::-1])
    views = tta_views(x, "dihedral")
    assert len(views) == 8 and all(v.flags.c_contiguous for v in views)
    assert len({v.tobytes() for v in views}) == 8  # eight different images
    np.testing.assert_array_equal(views[1][0, 0], np.rot90(x[0, 0]))
    with pytest.raises(ValueError, match="needs square inputs, got 5x4"):
        tta_views(x[..., :4], "dihedral")
    with pytest.raises(ValueError, match="tta: expected None, 'flip' or 'dihedral'"):
        tta_views(x, "rot")
