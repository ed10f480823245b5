"""Where Winograd's F(4x4, 3x3) pays: 3x3 stride-1 convolutions timed on both paths.

For each channel count, map size and batch, the forward pass and the two backward passes
(data and weight) of a 3x3 stride-1 padding-1 convolution run with Winograd on and off
(`weitiao.set_winograd`), interleaved in the same run. A ratio above 1 means Winograd is
faster. conv2d.c's rule for taking the Winograd path is read off this table.

    PYTHONPATH=python python benchmarks/winograd_switch.py [--threads 2] [--write docs/performance.md]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (command_line, format_machine, machine_info, markdown_table,  # noqa: E402
                    publish, set_threads, time_interleaved)

import weitiao  # noqa: E402
from weitiao import _C  # noqa: E402

CHANNELS = (64, 128, 256, 512)
MAPS = (7, 14, 28)
BATCHES = (1, 8, 32)


def step(x, w, dy):
    """Forward, backward data and backward weight of one convolution."""
    _C.conv2d_forward(x, w, None, padding=1)
    _C.conv2d_backward_data(dy, w, x.shape, padding=1)
    _C.conv2d_backward_weight(dy, x, np.zeros_like(w), None, padding=1)


def forward(x, w):
    _C.conv2d_forward(x, w, None, padding=1)


def timed(fn) -> dict:
    """Seconds per call of ``fn`` with Winograd on and off, interleaved."""
    def on():
        weitiao.set_winograd(True)
        fn()

    def off():
        weitiao.set_winograd(False)
        fn()

    try:
        t = time_interleaved({"on": on, "off": off}, reps=5, rotate=True)
    finally:
        weitiao.set_winograd(True)
    return {k: v.median for k, v in t.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for c in CHANNELS:
        for size in MAPS:
            if c * size > 512 * 14:  # the shapes a ResNet has: wide channels on small maps
                continue
            for n in BATCHES:
                x = rng.standard_normal((n, c, size, size), dtype=np.float32)
                w = rng.standard_normal((c, c, 3, 3), dtype=np.float32) * 0.05
                dy = rng.standard_normal((n, c, size, size), dtype=np.float32)
                fwd = timed(lambda: forward(x, w))
                train = timed(lambda: step(x, w, dy))
                rows.append([f"{c}", f"{size}x{size}", f"{n}",
                             f"{fwd['off'] * 1e6:.0f}", f"{fwd['on'] * 1e6:.0f}",
                             f"**{fwd['off'] / fwd['on']:.2f}x**",
                             f"{train['off'] * 1e3:.2f}", f"{train['on'] * 1e3:.2f}",
                             f"**{train['off'] / train['on']:.2f}x**"])
                print(rows[-1], flush=True)
    publish([
        f"### Winograd against im2col for 3x3 stride-1 convolutions, {args.threads} threads",
        f"Command: `{command_line()}`",
        format_machine(machine_info()),
        markdown_table(["channels in = out", "map", "batch", "forward im2col µs",
                        "forward Winograd µs", "Winograd speed-up", "train step im2col ms",
                        "train step Winograd ms", "Winograd speed-up (train)"], rows),
        "A train step is the forward pass and both backward passes. Median of interleaved "
        "repetitions; above 1x Winograd is the faster path.",
    ], args.write, "winograd_switch")


if __name__ == "__main__":
    main()
