"""Shared machinery of the experiments (``pytest -m experiment``): the pretrained source
model, datasets, running one configuration over seeds, mean ± std, the claim check, and
rewriting each experiment's section of docs/experiments.md.

Claims are checked as the issue asks: the chapter's direction "a beats b" counts as
supported only when mean(a) - mean(b) > 2 * max(std(a), std(b)) over the seeds (sample
standard deviations, ddof=1); the verdict also says in how many seeds a came out ahead
(the runs of one seed share their data, so they pair up). An experiment asserts only the
claims listed as asserted in its file; every other claim is reported in the docs with the
verdict the data gave.
"""
from __future__ import annotations

import functools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from weitiao.data import FashionMNIST
from weitiao.finetune import FineTuner
from weitiao.pretrain import fashion_mnist_split, pretrain_record

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "experiments.md"
SEEDS = (0, 1, 2)

# The source model of the split Fashion-MNIST experiments: resnet_small, classes 0-4 (all
# 30000 training images), pretrained once with seed 0 (see docs/experiments.md for why once).
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
SOURCE_SETTINGS = {"classes": list(SOURCE_CLASSES), "epochs": 3, "seed": 0,
                   "per_class": None, "layers": [1, 1, 1]}
PRETRAIN_COMMAND = ("python -m weitiao pretrain --dataset fashion-mnist --classes 0,1,2,3,4 "
                    "--epochs 3 --seed 0 --out resnet_small_fmnist5.safetensors")
# Test images per target class: a fixed stratified subset (seed 0) of the 1000 per class,
# the same for every method and seed, to keep evaluation within the time budget.
TEST_PER_CLASS = 400


def cache_dir() -> Path:
    """Where the pretrained source model is kept between runs
    ($WEITIAO_EXPERIMENT_CACHE, default ~/.cache/weitiao/experiments)."""
    path = Path(os.environ.get("WEITIAO_EXPERIMENT_CACHE",
                               Path.home() / ".cache" / "weitiao" / "experiments"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_grid(cache_name: str, targets, seeds_of, arms_of, make_target, run_arm) -> dict:
    """Every (target, seed, arm) run, kept in the cache file ``cache_name`` as it finishes so
    an interrupted experiment resumes where it stopped: ``{target: {arm: [result per
    seed]}}``. ``make_target(target, seed)`` builds the data once per target and seed (only
    if a run still needs it); ``run_arm(data, seed, options)`` returns one result dict."""
    done_path = cache_dir() / cache_name
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    results = {t: {a: [] for a in arms_of(t)} for t in targets}
    for target in targets:
        for seed in seeds_of(target):
            data = None
            for arm, options in arms_of(target).items():
                key = f"{target} | {seed} | {arm}"
                if key not in done:
                    data = data or make_target(target, seed)
                    done[key] = run_arm(data, seed, options)
                    done_path.write_text(json.dumps(done, indent=1))
                results[target][arm].append(done[key])
                print(f"{target} seed {seed} {arm}: {done[key]}", flush=True)
    return results


def source_model_path() -> Path:
    """The source model file, made by the `pretrain` command unless a file made with the
    same settings is already in the cache."""
    from weitiao.cli import main

    path = cache_dir() / "resnet_small_fmnist5.safetensors"
    if path.is_file():
        record = pretrain_record(path)
        if all(record.get(k) == v for k, v in SOURCE_SETTINGS.items()):
            return path
    args = PRETRAIN_COMMAND.split()[3:-1] + [str(path)]
    assert main(args) == 0
    return path


@functools.lru_cache(maxsize=2)
def fashion_mnist(train: bool) -> FashionMNIST:
    return FashionMNIST(train=train)


def split(classes, train: bool, per_class=None, seed: int = 0, augment: bool = False,
          config=None):
    return fashion_mnist_split(classes, train, per_class, seed, config=config,
                               augment=augment, data=fashion_mnist(train))


def eval_set(classes, config):
    """The fixed evaluation images of ``classes`` (TEST_PER_CLASS each, seed 0)."""
    return split(classes, False, TEST_PER_CLASS, 0, config=config)


# ---------------------------------------------------------------------------- statistics
def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def pct(values) -> str:
    """"84.3 ± 1.2" (percent) for accuracies in [0, 1]."""
    m, s = mean_std(values)
    return f"{100 * m:.1f} ± {100 * s:.1f}"


@dataclass
class Claim:
    """The chapter says ``better`` beats ``worse``; ``asserted`` claims fail the test when
    the data stops supporting them."""

    text: str
    better: list
    worse: list
    asserted: bool = False
    margin: float = field(init=False)
    spread: float = field(init=False)

    def __post_init__(self):
        mb, sb = mean_std(self.better)
        mw, sw = mean_std(self.worse)
        self.margin = mb - mw
        self.spread = max(sb, sw)

    @property
    def supported(self) -> bool:
        return self.margin > 2 * self.spread

    def verdict(self) -> str:
        diff = (f"difference {100 * self.margin:+.1f} points, 2 x spread "
                f"{200 * self.spread:.1f}")
        if len(self.better) == len(self.worse):
            wins = sum(b > w for b, w in zip(self.better, self.worse))
            diff += f"; ahead in {wins} of {len(self.better)} seeds"
        if self.supported:
            word = "supported" + (" (asserted)" if self.asserted else "")
        elif self.margin > 0:
            word = "same direction, but within the run-to-run spread: not shown"
        else:
            word = "not supported: the other way round" if -self.margin > 2 * self.spread \
                else "not supported: no difference beyond the spread"
        return f"{self.text}: **{word}** ({diff})"


def assert_claims(claims: list[Claim]) -> None:
    """Fail on every asserted claim the data no longer supports (call it after the docs
    section is written, so a failing run still leaves its numbers)."""
    failed = [c.verdict() for c in claims if c.asserted and not c.supported]
    assert not failed, "claims no longer supported:\n" + "\n".join(failed)


# ---------------------------------------------------------------------------- running
_RESULTS: dict = {}


def run(source, train, test, *, epochs: int, batch_size: int, seed: int,
        eval_after=(), key=None, **options) -> dict:
    """Fine-tune (or train from scratch, freeze, ... per ``options``: FineTuner keywords)
    on ``train`` for ``epochs`` and evaluate on ``test``. ``eval_after``: also evaluate
    after these epoch counts (0 = before training). Returns {"accuracy", "seconds",
    "after": {epochs: accuracy}}.

    ``key``: a hashable name of the source, train and test data; runs with equal keys,
    budgets and options are done once per pytest session (experiments 2 and 3 share
    runs this way; a rerun with the same seed would give the same numbers anyway).
    """
    memo = None
    if key is not None:
        memo = (key, epochs, batch_size, seed, tuple(sorted(eval_after)),
                tuple(sorted(options.items())))
        if memo in _RESULTS:
            return dict(_RESULTS[memo], shared=True)
    result = _run(source, train, test, epochs, batch_size, seed, eval_after, options)
    if memo is not None:
        _RESULTS[memo] = result
    return result


def fit_light(source, train, val, size, seed, epochs, **options) -> dict:
    """A FineTuner with augment "light" at ``size`` px, ``epochs`` of batch 32 under warmup +
    cosine, evaluated on ``val``: its accuracy, the last epoch's training accuracy and the
    seconds taken (experiments 6 and 8)."""
    tuner = FineTuner(source, classes=train.classes, image_size=size, seed=seed,
                      augment="light", **options)
    began = time.perf_counter()
    history = tuner.fit(train, epochs, batch_size=32, scheduler="warmup_cosine", verbose=False)
    ev = tuner.evaluate(val, batch_size=128)
    return {"accuracy": ev.accuracy, "train_accuracy": history.epochs[-1].train_accuracy,
            "seconds": time.perf_counter() - began}


def _run(source, train, test, epochs, batch_size, seed, eval_after, options) -> dict:
    # every layer trains unless an arm says otherwise: what experiments 1-4 recorded,
    # before "bottom-half" became FineTuner's default freeze
    tuner = FineTuner(source, classes=train.classes, seed=seed, **{"freeze": None, **options})
    after = {}
    began = time.perf_counter()
    done = 0
    for stop in sorted(set(eval_after) | {epochs}):
        if stop > done:
            tuner.fit(train, stop - done, batch_size=batch_size, verbose=False)
            done = stop
        if stop in eval_after:
            after[stop] = tuner.evaluate(test, batch_size=256).accuracy
    accuracy = after[epochs] if epochs in after else tuner.evaluate(test, batch_size=256).accuracy
    return {"accuracy": accuracy, "seconds": time.perf_counter() - began, "after": after}


# ---------------------------------------------------------------------------- docs
def write_section(key: str, body: str) -> None:
    """Replace the text between ``<!-- experiment:KEY -->`` and ``<!-- /experiment:KEY -->``
    in docs/experiments.md (appending the section if it is missing)."""
    start, end = f"<!-- experiment:{key} -->", f"<!-- /experiment:{key} -->"
    text = DOCS.read_text("utf-8") if DOCS.exists() else "# Experiments\n"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text, "utf-8")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def footer(command: str, began: float, shared: int = 0) -> str:
    """The regenerating command, wall time and date; ``shared``: how many runs were taken
    from an experiment that ran earlier in the same session (not counted in the time)."""
    from weitiao import get_num_threads

    note = f", {shared} runs shared with an earlier experiment not repeated" if shared else ""
    return (f"Regenerate: `{command}` "
            f"({time.perf_counter() - began:.0f} s wall time on {os.cpu_count()} cores, "
            f"{get_num_threads()} threads{note}, {time.strftime('%Y-%m-%d')}).")
