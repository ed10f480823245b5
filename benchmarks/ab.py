"""Two or more builds of weitiao._C against each other and PyTorch, in one process.

This machine's speed drifts by tens of percent within minutes, so comparing a kernel change
across two runs of kernels.py mostly measures the drift. Here each build's compiled module
is loaded side by side and the conv ops of ResNet-18 are timed interleaved -- every build
and torch once per repetition, the order rotating -- so a slow minute hits all of them
alike. Two copies of one build still differ by about 2 % on most layers and up to 10 % on
the 56x56 Winograd layer: check a change with a copy of the baseline as a third build.

    # build A, keep its module; build B, keep it; compare
    python setup.py build_ext --inplace && cp python/weitiao/_C*.so /tmp/a.so
    (edit csrc/...)
    python setup.py build_ext --inplace && cp python/weitiao/_C*.so /tmp/b.so
    PYTHONPATH=python python benchmarks/ab.py a=/tmp/a.so b=/tmp/b.so --layers layer3.0

Prints a markdown table: median ms per build and torch, each build's torch/build ratio, and
each build's speed relative to the first one named (> 1: faster).
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os

import kernels
from common import markdown_table, set_threads, time_interleaved


def load_build(path: str):
    """The compiled module at ``path``, loaded under its real name without replacing
    ``weitiao._C`` (extension modules are keyed by file, so each path is its own copy)."""
    if not os.path.isfile(path):
        raise SystemExit(f"ab.py: {path}: no such file (expected a copy of weitiao/_C*.so)")
    loader = importlib.machinery.ExtensionFileLoader("weitiao._C", path)
    spec = importlib.util.spec_from_file_location("weitiao._C", path, loader=loader)
    if spec is None:
        raise SystemExit(f"ab.py: {path}: not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def parse_build(arg: str) -> tuple[str, str]:
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH to a _C*.so, got {arg!r}")
    return name, path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", type=parse_build, metavar="NAME=PATH",
                        help="a copy of a built weitiao/_C*.so; the first is the baseline")
    parser.add_argument("--layers", default="",
                        help="comma-separated layer names of kernels.RESNET18 (default: all)")
    parser.add_argument("--ops", default=",".join(kernels.OPS),
                        help=f"comma-separated, of {', '.join(kernels.OPS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--min-rep-s", type=float, default=0.2)
    args = parser.parse_args(argv)

    set_threads(args.threads)
    builds = {}
    for name, path in args.builds:
        module = load_build(path)
        module.set_num_threads(args.threads)  # each copy has its own thread setting
        builds[name] = module
    layers = [s for s in args.layers.split(",") if s]
    ops = [s for s in args.ops.split(",") if s]
    unknown = sorted(set(layers) - {s.layer for s in kernels.RESNET18})
    unknown += sorted(set(ops) - set(kernels.OPS))
    if unknown:
        raise SystemExit(f"ab.py: unknown layer or op: {', '.join(unknown)}")

    names = list(builds)
    rows = []
    for shape in kernels.RESNET18:
        if layers and shape.layer not in layers:
            continue
        per_build = {}
        for name, module in builds.items():
            kernels.check_against_torch(shape, lib=module)
            per_build[name] = kernels.make_ops(shape, args.batch, lib=module)
        for op in ops:
            fns = {name: per_build[name][op][0] for name in names}
            fns["torch"] = per_build[names[0]][op][1]
            t = time_interleaved(fns, args.reps, 2, args.min_rep_s, rotate=True)
            base, torch_s = t[names[0]].median, t["torch"].median
            row = [shape.layer, op]
            row += [f"{t[n].median * 1e3:.2f}" for n in names] + [f"{torch_s * 1e3:.2f}"]
            row += [f"{torch_s / t[n].median:.2f}" for n in names]
            row += [f"{base / t[n].median:.2f}" for n in names[1:]]
            rows.append(row)
            print(" ".join(row))
    headers = ["layer", "op"] + [f"{n} ms" for n in names] + ["torch ms"]
    headers += [f"torch/{n}" for n in names] + [f"{names[0]}/{n}" for n in names[1:]]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
