"""Run one benchmarks/run.py workload on weitiao alone, for a profiler to watch.

    PYTHONPATH=python perf record -o perf.data python benchmarks/profile_step.py lite0_train_224
    perf report -i perf.data --no-children --sort symbol

One untimed step warms the block cache and the thread pool; then ``--steps`` more run and
their seconds are printed.
"""
from __future__ import annotations

import argparse
import time

import weitiao
from run import WORKLOADS, _weitiao_runner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None,
                        help="images per step (default: the workload's, else 32)")
    args = parser.parse_args(argv)
    weitiao.set_num_threads(args.threads)
    _, model_name, size, mode, batch = WORKLOADS[args.workload]
    step = _weitiao_runner(model_name, size, mode, args.batch or batch or 32, images=200)
    step()
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        print(f"{args.workload}: {time.perf_counter() - start:.3f} s", flush=True)


if __name__ == "__main__":
    main()
