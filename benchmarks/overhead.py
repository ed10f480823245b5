"""Per-call overhead on small work: single layers at batch 1 on 7x7 maps, where the time of
one call is mostly argument checks, shape and workspace planning and the Python layer, not
arithmetic. Three ways to call each weitiao layer (the module, ``layer(x)``; the C function
with the same arguments, which skips the Python layer; torch in eval mode under no_grad in
NCHW and channels_last) in the same run, interleaved.

    PYTHONPATH=python python benchmarks/overhead.py [--threads 2] [--write docs/performance.md]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (command_line, format_machine, machine_info, markdown_table,  # noqa: E402
                    publish, set_threads, time_interleaved, torch)

from weitiao import _C, nn  # noqa: E402


def cases(rng):
    """(name, weitiao module, its C call, torch module, input shape)."""
    conv3 = nn.Conv2d(64, 64, 3, padding=1, bias=False, rng=rng)
    conv1 = nn.Conv2d(64, 64, 1, bias=False, rng=rng)
    dw = nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False, rng=rng)
    bn = nn.BatchNorm2d(64)
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    fc = nn.Linear(512, 10, rng=rng)
    t = torch.nn
    return [
        ("conv 3x3, 64->64", conv3,
         lambda x: _C.conv2d_forward(x, conv3.weight.data, None, stride=(1, 1),
                                     padding=(1, 1), dilation=(1, 1), groups=1),
         t.Conv2d(64, 64, 3, padding=1, bias=False), (1, 64, 7, 7)),
        ("conv 1x1, 64->64", conv1,
         lambda x: _C.conv2d_forward(x, conv1.weight.data, None, stride=(1, 1),
                                     padding=(0, 0), dilation=(1, 1), groups=1),
         t.Conv2d(64, 64, 1, bias=False), (1, 64, 7, 7)),
        ("depthwise 3x3, 64", dw,
         lambda x: _C.conv2d_forward(x, dw.weight.data, None, stride=(1, 1), padding=(1, 1),
                                     dilation=(1, 1), groups=64),
         t.Conv2d(64, 64, 3, padding=1, groups=64, bias=False), (1, 64, 7, 7)),
        ("batch norm (eval), 64", bn,
         lambda x: _C.batch_norm2d_forward_eval(x, bn.weight.data, bn.bias.data,
                                                bn.running_mean, bn.running_var, eps=1e-5),
         t.BatchNorm2d(64), (1, 64, 7, 7)),
        ("max pool 3x3/2, 64", pool,
         lambda x: _C.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))[0],
         t.MaxPool2d(3, stride=2, padding=1), (1, 64, 7, 7)),
        ("linear 512->10", fc,
         lambda x: _C.linear_forward(x, fc.weight.data, fc.bias.data),
         t.Linear(512, 10), (1, 512)),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--write")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, layer, c_call, ref, shape in cases(rng):
        layer.eval()
        ref.eval()
        x = rng.standard_normal(shape, dtype=np.float32)
        xt = torch.from_numpy(x)
        xcl = xt.contiguous(memory_format=torch.channels_last) if len(shape) == 4 else xt
        np.testing.assert_array_equal(layer(x), c_call(x))

        def torch_call(inp):
            with torch.no_grad():
                return ref(inp)

        t = time_interleaved({"module": lambda: layer(x), "C": lambda: c_call(x),
                              "NCHW": lambda: torch_call(xt),
                              "cl": lambda: torch_call(xcl)}, reps=args.reps, rotate=True)
        us = {k: v.median * 1e6 for k, v in t.items()}
        best = min(us["NCHW"], us["cl"]) if len(shape) == 4 else us["NCHW"]
        rows.append([name, f"{us['module']:.1f}", f"{us['C']:.1f}",
                     f"{us['module'] - us['C']:.1f}", f"{us['NCHW']:.1f}",
                     f"{us['cl']:.1f}" if len(shape) == 4 else "-",
                     f"**{best / us['module']:.2f}x**"])
        print(rows[-1], flush=True)
    publish([
        f"### Per-call overhead: one layer at batch 1, {args.threads} threads",
        f"Command: `{command_line()}`",
        format_machine(machine_info()),
        markdown_table(["layer (input 1x64x7x7; linear 1x512)", "module µs", "C call µs",
                        "Python layer µs", "torch NCHW µs", "torch channels_last µs",
                        "torch/weitiao (faster torch)"], rows),
        "Median of interleaved repetitions. \"module\" is `layer(x)` in eval mode; \"C call\" "
        "is the `weitiao._C` function with the same arguments, so their difference is the "
        "Python layer (shape checks, padding, bookkeeping); what remains of the C call on "
        "this little arithmetic is argument parsing, planning and the thread hand-off. "
        "The ratio compares the module call with the faster of PyTorch's two layouts.",
    ], args.write, "overhead")


if __name__ == "__main__":
    main()
