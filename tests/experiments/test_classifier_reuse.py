"""Experiment 4: reusing the source classifier's rows for target classes the source knows.

d2l's example copies ImageNet's "hotdog" row (index 934) into the new head. No real
multi-image dataset of ImageNet classes is available offline here (the elpv solar cells are
no ImageNet class; scikit-image ships a handful of single photos), so the experiment uses the
split Fashion-MNIST source model (classes 0-4) and two targets built from Fashion-MNIST:

- "all shared": Coat, Pullover, T-shirt/top, relabelled 0-2 in that order: every target
  class has a source row (like a target made only of ImageNet classes);
- "half shared": Trouser, Dress (source rows) and Sandal, Bag (new): as hotdog / not-hotdog,
  where only one class exists in ImageNet.

Each fine-tunes with the d2l recipe on 10 training images per class, with the matching rows
copied by name (``reuse_classifier="auto"``) or with the usual random head; accuracy on the
targets' test images before training, after the first epoch and at the end.

    pytest -m experiment tests/experiments/test_classifier_reuse.py
"""
import time

import pytest

import expkit
from expkit import Claim

pytestmark = pytest.mark.experiment

TARGETS = {"all shared (Coat, Pullover, T-shirt/top)": (4, 2, 0),
           "half shared (Trouser, Dress; new: Sandal, Bag)": (1, 3, 5, 8)}
PER_CLASS = 10
EPOCHS = 10
BATCH = 10
CHECKPOINTS = (0, 1, EPOCHS)

# Asserted only where the recorded run supported the claim beyond twice the spread.
ASSERTED = {("all shared (Coat, Pullover, T-shirt/top)", 1)}


def test_classifier_row_reuse():
    from weitiao.finetune import FineTuner
    from weitiao.models import create_model

    began = time.perf_counter()
    source = create_model("resnet_small", weights=expkit.source_model_path())
    acc = {(t, r, e): [] for t in TARGETS for r in (True, False) for e in CHECKPOINTS}
    matched = {}
    for t, classes in TARGETS.items():
        test = expkit.eval_set(classes, source.config)
        for seed in expkit.SEEDS:
            train = expkit.split(classes, True, PER_CLASS, seed, augment=True,
                                 config=source.config)
            for reuse in (True, False):
                result = expkit.run(source, train, test, seed=seed, epochs=EPOCHS,
                                    batch_size=BATCH, eval_after=CHECKPOINTS,
                                    reuse_classifier="auto" if reuse else None)
                for e in CHECKPOINTS:
                    acc[t, reuse, e].append(result["after"][e])
                print(f"{t} seed {seed} reuse={reuse}: {result['after']}", flush=True)
        matched[t] = FineTuner(source, classes=train.classes, reuse_classifier="auto") \
            .reuse_report.matched

    claims = []
    for t in TARGETS:
        for e in CHECKPOINTS[1:]:
            claims.append(Claim(f"{t}: reused rows beat a random head after "
                                f"{'the first epoch' if e == 1 else f'{e} epochs'}",
                                acc[t, True, e], acc[t, False, e],
                                asserted=(t, e) in ASSERTED))
    header = ["target", "head", *[f"after {e} epoch{'s' if e != 1 else ''}"
                                  for e in CHECKPOINTS]]
    rows = []
    for t in TARGETS:
        for reuse in (True, False):
            label = (f"reused rows for {', '.join(matched[t])}" if reuse else "random")
            rows.append([t, label, *[expkit.pct(acc[t, reuse, e]) for e in CHECKPOINTS]])
    body = "\n".join([
        f"Source model as in experiment 2 (classes 0-4). Fine-tuning: body lr 1e-3, head 10x, "
        f"{PER_CLASS} training images per class, {EPOCHS} epochs of batch {BATCH}. Accuracy "
        f"(%) on {expkit.TEST_PER_CLASS} test images per target class, mean ± std over seeds "
        f"{', '.join(map(str, expkit.SEEDS))}. The training images were also among the "
        f"source's pretraining images, as ImageNet photos would be for an ImageNet model; the "
        f"test images were not.",
        "",
        expkit.table(header, rows),
        "",
        *[f"- {c.verdict()}" for c in claims],
        "",
        expkit.footer("pytest -m experiment tests/experiments/test_classifier_reuse.py",
                      began),
    ])
    expkit.write_section("classifier-reuse", body)
    expkit.assert_claims(claims)
