"""Which OpenBLAS kernel weitiao's sgemms run, and what OPENBLAS_CORETYPE changes.

The OpenBLAS wheel is built with DYNAMIC_ARCH: it picks a kernel for the CPU when it loads,
and OPENBLAS_CORETYPE overrides that choice. For each kernel this CPU can execute, a child
process started with OPENBLAS_CORETYPE set reports the kernel OpenBLAS says it loaded, the
sgemm peak (2048^3, one and ``--threads`` concurrent single-threaded calls) and two ResNet-18
convolutions at batch 32: layer3's 3x3 (Winograd, 36 sgemms) and layer2.0's 3x3 stride 2
(im2col, one sgemm per image). The first row is the process's default choice.

    PYTHONPATH=python python benchmarks/coretype.py [--write docs/performance.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# Kernels worth comparing, each with the CPU flags it needs; OpenBLAS would stop with an
# illegal instruction on a CPU without them.
CANDIDATES = (("SkylakeX", ("avx512f",)), ("Haswell", ("avx2", "fma")), ("Zen", ("avx2", "fma")),
              ("Sandybridge", ("avx",)), ("Nehalem", ()))
SECTION = "coretype"


def child(threads: int) -> None:
    from common import sgemm_peak, timeit

    import numpy as np
    import weitiao
    from weitiao import _C

    weitiao.set_num_threads(threads)
    rng = np.random.default_rng(0)
    result = {"corename": _C.blas_info()["corename"], "sgemm1": sgemm_peak(1),
              "sgemm": sgemm_peak(threads)}
    for name, (c, oc, size, stride) in {"layer3": (256, 256, 14, 1),
                                        "layer2.0": (64, 128, 56, 2)}.items():
        x = rng.standard_normal((32, c, size, size), dtype=np.float32)
        w = rng.standard_normal((oc, c, 3, 3), dtype=np.float32)
        with weitiao.array_cache():
            seconds = timeit(lambda: _C.conv2d_forward(x, w, stride=stride, padding=1),
                             reps=5).median
        result[name] = seconds * 1e3
    print(json.dumps(result))


def cpu_can_run(flags: tuple[str, ...], have: set[str]) -> bool:
    return all(f in have for f in flags)


def run(coretype: str | None, threads: int) -> dict:
    env = os.environ.copy()
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                          "--threads", str(threads)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"OPENBLAS_CORETYPE={coretype}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", metavar="PATH",
                        help=f"replace the <!-- {SECTION}:start/end --> section of this file")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.threads)
    from common import command_line, cpu_flags, format_machine, machine_info, markdown_table
    from common import publish

    have = set(cpu_flags(("avx512f", "avx2", "fma", "avx")).split())
    rows = []
    for coretype in [None] + [c for c, flags in CANDIDATES if cpu_can_run(flags, have)]:
        r = run(coretype, args.threads)
        rows.append([coretype or "(unset: OpenBLAS's choice)", r["corename"],
                     f"{r['sgemm1']:.1f}", f"{r['sgemm']:.1f}", f"{r['layer3']:.1f}",
                     f"{r['layer2.0']:.1f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["OPENBLAS_CORETYPE", "kernel loaded", "sgemm GFLOP/s, 1 thread",
                            f"sgemm GFLOP/s, {args.threads} threads",
                            "layer3 3x3 forward ms", "layer2.0 3x3/2 forward ms"], rows)
    publish([
        f"### OpenBLAS kernel choice (OPENBLAS_CORETYPE), {args.threads} threads",
        f"Command: `{command_line()}`",
        format_machine(machine_info()),
        "Each row is a fresh process with OPENBLAS_CORETYPE set (kernels this CPU cannot "
        "execute are left out). The conv columns are weitiao's forward pass at batch 32, "
        "median of 5; the sgemm columns the best of 7 repetitions.",
        table,
    ], args.write, SECTION)


if __name__ == "__main__":
    main()
