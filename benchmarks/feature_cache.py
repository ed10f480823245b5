"""Feature caching speed-up: head-only fine-tuning with everything below the head frozen,
computing the backbone once per augmentation pass (cached) vs a full forward every batch
(uncached), same FineTuner, same data, same result.

    PYTHONPATH=python python benchmarks/feature_cache.py [--images 500] [--size 224] [--write docs/performance.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write")
    args = parser.parse_args(argv)
    import weitiao
    from weitiao.data import ArrayDataset
    from weitiao.finetune import FineTuner
    from weitiao.models import efficientnet_lite0, resnet18
    from common import command_line, format_machine, machine_info, markdown_table, publish

    weitiao.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, 3, args.size, args.size), dtype=np.float32)
    data = ArrayDataset(x, np.arange(args.images) % 4, classes=list("abcd"))
    rows = []
    for name, build in (("ResNet-18", resnet18), ("EfficientNet-Lite0", efficientnet_lite0)):
        model = build(rng=0)
        model.config = model.config.resized(args.size)
        seconds, weights = {}, {}
        for cached in (False, True):
            tuner = FineTuner(model, classes=data.classes, freeze="backbone", seed=0)
            t0 = time.perf_counter()
            tuner.fit(data, epochs=args.epochs, batch_size=32, cache_features=cached,
                      verbose=False, num_workers=0)
            seconds[cached] = time.perf_counter() - t0
            weights[cached] = tuner.model.head.weight.data.copy()
        diff = float(np.abs(weights[True] - weights[False]).max())
        rows.append([name, f"{seconds[False]:.1f}", f"{seconds[True]:.1f}",
                     f"**{seconds[False] / seconds[True]:.1f}x**", f"{diff:.1e}"])
        print(rows[-1], flush=True)
    publish([
        f"### Feature caching: head-only fine-tuning, {args.epochs} epochs over "
        f"{args.images} images at {args.size}x{args.size}, batch 32, {args.threads} threads",
        f"Command: `{command_line()}`",
        format_machine(machine_info()),
        markdown_table(["model", "uncached s", "cached s", "speed-up",
                        "max abs head weight difference"], rows),
        "Uncached: a full forward of the frozen backbone for every batch of every epoch (what "
        "a PyTorch loop with `requires_grad_(False)` does). Cached: the backbone runs once "
        "(one augmentation pass, deterministic preprocessing here) and the head trains on the "
        "stored features. The heads end equal to float rounding.",
    ], args.write, "feature-cache")


if __name__ == "__main__":
    main()
