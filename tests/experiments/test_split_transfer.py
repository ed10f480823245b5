"""Experiment 2: split Fashion-MNIST transfer (Yosinski et al. 2014 style).

Source: resnet_small pretrained on Fashion-MNIST classes 0-4 (T-shirt/top, Trouser,
Pullover, Dress, Coat; all 30000 training images). Target: the other five classes (Sandal,
Shirt, Sneaker, Bag, Ankle boot) with 10, 50 or 500 training images per class. Methods, all
under the same epoch budget per target size: fine-tuning (d2l recipe: body lr 1e-3, new
head 10x), training from scratch (lr 1e-2, as d2l's scratch run), freezing the bottom k
stages (k = 1: stem; 2: + layer1; 3: + layer2) and the linear probe (everything but the
head frozen, cached features). Reported: accuracy on the target classes' test images.

    pytest -m experiment tests/experiments/test_split_transfer.py
"""
import time

import pytest

import expkit
from expkit import Claim

pytestmark = pytest.mark.experiment

# Target images per class -> training budget. Smaller sets get more epochs so that every
# size sees a comparable number of SGD steps (~75-120); the budget is the same for all
# methods at one size, as in the d2l chapter's comparison.
SIZES = {10: dict(epochs=15, batch_size=10),
         50: dict(epochs=8, batch_size=25),
         500: dict(epochs=3, batch_size=64)}
SOURCE_PER_CLASS = 6000

METHODS = {
    # written out as experiment 3 writes them, so the two share these runs
    "fine-tune (d2l: lr 1e-3, head 10x)": dict(lr=1e-3, head_lr_mult=10),
    "fine-tune, lr 1e-2 (head 10x)": dict(lr=1e-2, head_lr_mult=10),
    "scratch (lr 1e-2)": dict(from_scratch=True),
    "freeze k=1 (stem)": dict(freeze=1),
    "freeze k=2 (stem, layer1)": dict(freeze=2),
    "freeze k=3 (stem, layer1, layer2)": dict(freeze=3),
    "linear probe (backbone frozen)": dict(freeze="backbone"),
    # The probe's head at the recipe's 1e-2 is still far from converged after ~100 steps;
    # with cached features a 10x faster head costs nothing, so show what the probe can do.
    "linear probe, head lr 1e-1": dict(freeze="backbone", lr=1e-2),
}
FT, SCRATCH, PROBE = "fine-tune (d2l: lr 1e-3, head 10x)", "scratch (lr 1e-2)", \
    "linear probe (backbone frozen)"

# Claims the measured data supported by more than twice the run-to-run spread in the run
# recorded in docs/experiments.md; only these are asserted (see expkit's docstring).
ASSERTED = {("fine-tune > probe", 50), ("fine-tune > probe", 500)}


def test_split_fashion_mnist_transfer():
    from weitiao.models import create_model

    began = time.perf_counter()
    source = create_model("resnet_small", weights=expkit.source_model_path())
    record = expkit.pretrain_record(expkit.source_model_path())
    test = expkit.eval_set(expkit.TARGET_CLASSES, source.config)
    acc = {(m, n): [] for m in METHODS for n in SIZES}
    secs = {(m, n): [] for m in METHODS for n in SIZES}
    shared = 0
    for seed in expkit.SEEDS:
        for n, budget in SIZES.items():
            train = expkit.split(expkit.TARGET_CLASSES, True, n, seed, augment=True,
                                 config=source.config)
            for m, options in METHODS.items():
                result = expkit.run(source, train, test, seed=seed, key=("split", n),
                                    **budget, **options)
                shared += result.get("shared", False)
                acc[m, n].append(result["accuracy"])
                secs[m, n].append(result["seconds"])
                print(f"seed {seed} n={n} {m}: {result['accuracy']:.4f} "
                      f"({result['seconds']:.0f} s)", flush=True)

    gains = {n: [a - b for a, b in zip(acc[FT, n], acc[SCRATCH, n])] for n in SIZES}
    claims = []
    for n in SIZES:
        claims.append(Claim(f"{n}/class: fine-tune beats scratch", acc[FT, n],
                            acc[SCRATCH, n], asserted=("fine-tune > scratch", n) in ASSERTED))
    for n in SIZES:
        claims.append(Claim(f"{n}/class: fine-tune beats the linear probe", acc[FT, n],
                            acc[PROBE, n], asserted=("fine-tune > probe", n) in ASSERTED))
    claims.append(Claim("the gain of fine-tuning over scratch shrinks from 10 to 500 "
                        "images/class", gains[10], gains[500],
                        asserted=("gain shrinks", 0) in ASSERTED))

    sizes = list(SIZES)
    header = ["method"] + [f"{n}/class (source {SOURCE_PER_CLASS // n}x larger)"
                           for n in sizes]
    rows = [[m] + [expkit.pct(acc[m, n]) for n in sizes] for m in METHODS]
    rows.append(["**fine-tune − scratch** (points)"] + [expkit.pct(gains[n]) for n in sizes])
    rows.append(["seconds per run, fine-tune / scratch / probe"]
                + [" / ".join(f"{expkit.mean_std(secs[m, n])[0]:.0f}"
                              for m in (FT, SCRATCH, PROBE)) for n in sizes])
    budget = ", ".join(f"{n}/class: {b['epochs']} epochs, batch {b['batch_size']}"
                       for n, b in SIZES.items())
    body = "\n".join([
        f"Source model: `{expkit.PRETRAIN_COMMAND}` (resnet_small, 30000 images of classes "
        f"0-4, test accuracy on those classes {100 * record['test_accuracy']:.1f} %, "
        f"{record['seconds']:.0f} s). Target: classes 5-9, "
        f"accuracy (%) on {5 * expkit.TEST_PER_CLASS} of their test images, mean ± std over "
        f"seeds {', '.join(map(str, expkit.SEEDS))} (the seed draws the target images, the "
        f"new head and the batch order). Budget: {budget}.",
        "",
        expkit.table(header, rows),
        "",
        *[f"- {c.verdict()}" for c in claims],
        "",
        expkit.footer("pytest -m experiment tests/experiments/test_split_transfer.py", began,
                      shared),
    ])
    expkit.write_section("split-transfer", body)
    expkit.assert_claims(claims)
