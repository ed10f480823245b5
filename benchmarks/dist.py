"""Data-parallel fine-tuning over MPI on this machine, and a model of 8-64 ranks.

Runs fit (every layer trained, random model-ready images, two epochs of ``--steps``
batches; the second is timed) as:

- 1 rank x 2 threads: one process without MPI, the plain loop;
- 1 rank x 1 thread: the compute a rank does per image (the scaling model's input);
- 2 ranks x 1 thread, exact (8 micro-batch groups, summed in group order);
- 2 ranks x 1 thread, allreduce (one micro-batch per rank, MPI_Allreduce).

Under MPI each rank times its reductions (after a barrier, so waiting for the slower rank
is counted apart) and, at the end, MPI_Allreduce of 8 bytes (latency) and of the gradient
(bandwidth). From those: step time(N) = compute(B / N) + communication(N), with

    allreduce: 2 S (N - 1) / N / bandwidth + latency log2 N              (ring + tree)
    exact:     S (G / N + 1) (N - 1) / N / bandwidth + latency (N - 1 + log2 N)
               (reduce-scatter by Alltoallv of G rows of S bytes, then Allgatherv)

where S is the gradient's bytes and G = max(groups, N). Give ``--bandwidth`` (bytes/s) and
``--latency`` (s) to model a network instead of this machine's shared memory, e.g.
``--bandwidth 1.2e9 --latency 2e-5`` for 10 GbE.

    PYTHONPATH=python python benchmarks/dist.py --model resnet18 --size 112 --batch 16
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time


def worker(args) -> None:
    """One configuration; writes its measurements as JSON to ``args.worker``."""
    import numpy as np

    from weitiao.data import ArrayDataset
    from weitiao.dist import DataParallel, launched_world
    from weitiao.dist import parallel
    from weitiao.finetune import FineTuner
    from weitiao.models import create_model

    comm = launched_world()
    spent = {"wait": 0.0, "reduce": 0.0, "steps": 0}

    def timed(reduce):
        def run(comm_, *rest):
            began = time.perf_counter()
            if comm_ is not None:
                comm_.Barrier()
            mid = time.perf_counter()
            out = reduce(comm_, *rest)
            spent["wait"] += mid - began
            spent["reduce"] += time.perf_counter() - mid
            spent["steps"] += 1
            return out
        return run

    parallel.ordered_sum = timed(parallel.ordered_sum)
    parallel.allreduce_sum = timed(parallel.allreduce_sum)
    model = create_model(args.model, num_classes=10, rng=0)
    model.config = model.config.resized(args.size)
    n = args.batch * args.steps
    rng = np.random.default_rng(0)
    images = rng.standard_normal((n, 3, args.size, args.size), dtype=np.float32)
    data = ArrayDataset(images, np.arange(n) % 10, classes=[str(i) for i in range(10)])
    tuner = FineTuner(model, classes=data.classes, freeze=None, augment="none")
    target = None
    if comm is not None:
        target = DataParallel(comm, exact=args.mode == "exact")
    history = tuner.fit(data, 2, batch_size=args.batch, scheduler=None, num_workers=0,
                        comm=target, verbose=False)
    timed_epoch = history.epochs[-1]
    result = {"images_per_s": timed_epoch.examples_per_sec, "seconds": timed_epoch.seconds,
              "grad_bytes": 4 * sum(p.size for p in tuner.model.parameters()
                                    if p.requires_grad)}
    if comm is not None:
        from mpi4py import MPI

        steps = max(spent["steps"], 1)
        result["reduce_s_per_step"] = spent["reduce"] / steps
        result["wait_s_per_step"] = spent["wait"] / steps
        small, big = np.zeros(2, np.float32), np.zeros(result["grad_bytes"] // 4, np.float32)
        for name, buf, reps in (("latency_s", small, 200), ("allreduce_big_s", big, 5)):
            out = np.empty_like(buf)
            comm.Barrier()
            began = time.perf_counter()
            for _ in range(reps):
                comm.Allreduce([buf, MPI.FLOAT], [out, MPI.FLOAT], op=MPI.SUM)
            result[name] = comm.allreduce(time.perf_counter() - began, op=MPI.MAX) / reps
        if comm.Get_rank() != 0:
            return
    with open(args.worker, "w") as f:
        json.dump(result, f)


def launch(args, ranks: int, threads: int, mode: str) -> dict:
    out = tempfile.mktemp(suffix=".json")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", out, "--mode", mode,
           "--model", args.model, "--size", str(args.size), "--batch", str(args.batch),
           "--steps", str(args.steps)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if ranks:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
        cmd = [mpiexec, "-n", str(ranks)] + cmd
    else:
        env = {k: v for k, v in env.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
        cmd += ["--threads", str(threads)]
    subprocess.run(cmd, env=env, check=True)
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result


def communication(mode: str, ranks: int, grad_bytes: float, bandwidth: float,
                  latency: float, groups: int) -> float:
    """Seconds per step of the reduction on ``ranks`` ranks, by the model in the header."""
    if ranks == 1:
        return 0.0
    share = (ranks - 1) / ranks
    if mode == "allreduce":
        return 2 * grad_bytes * share / bandwidth + latency * math.log2(ranks)
    g = max(groups, ranks)
    return (grad_bytes * (g / ranks + 1) * share / bandwidth
            + latency * (ranks - 1 + math.log2(ranks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--bandwidth", type=float, default=None, help="bytes/s for the model")
    parser.add_argument("--latency", type=float, default=None, help="seconds for the model")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="exact", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.threads:
            import weitiao

            weitiao.set_num_threads(args.threads)
        worker(args)
        return
    runs = {
        "1 rank x 2 threads (no MPI)": launch(args, 0, 2, "plain"),
        "1 rank x 1 thread (no MPI)": launch(args, 0, 1, "plain"),
        "2 ranks x 1 thread, exact": launch(args, 2, 1, "exact"),
        "2 ranks x 1 thread, allreduce": launch(args, 2, 1, "allreduce"),
    }
    print(f"\n{args.model} at {args.size} px, global batch {args.batch}, every layer "
          f"trained, {args.steps} timed steps\n")
    print("| configuration | images/s | reduction ms/step | waiting for the slower rank "
          "ms/step |")
    print("| --- | --- | --- | --- |")
    for name, r in runs.items():
        reduce = f"{1e3 * r['reduce_s_per_step']:.1f}" if "reduce_s_per_step" in r else "-"
        wait = f"{1e3 * r['wait_s_per_step']:.1f}" if "wait_s_per_step" in r else "-"
        print(f"| {name} | {r['images_per_s']:.1f} | {reduce} | {wait} |")
    exact = runs["2 ranks x 1 thread, exact"]
    grad_bytes = exact["grad_bytes"]
    latency = args.latency if args.latency is not None else exact["latency_s"]
    bandwidth = args.bandwidth if args.bandwidth is not None else \
        2 * grad_bytes * 0.5 / max(exact["allreduce_big_s"] - latency, 1e-9)
    per_image = 1.0 / runs["1 rank x 1 thread (no MPI)"]["images_per_s"]
    print(f"\ngradient {grad_bytes / 1e6:.1f} MB; all-reduce latency {1e6 * latency:.0f} us, "
          f"bandwidth {bandwidth / 1e9:.2f} GB/s "
          f"({'given' if args.bandwidth else 'measured here, 2 ranks'}); compute "
          f"{1e3 * per_image:.1f} ms per image on one thread\n")
    print("| ranks | images/s, allreduce | images/s, exact | comm ms/step, allreduce | "
          "comm ms/step, exact |")
    print("| --- | --- | --- | --- | --- |")
    for ranks in (8, 16, 32, 64):
        batch = max(args.batch, ranks)
        compute = per_image * batch / ranks
        comm = {m: communication(m, ranks, grad_bytes, bandwidth, latency, args.groups)
                for m in ("allreduce", "exact")}
        print(f"| {ranks} | {batch / (compute + comm['allreduce']):.0f} | "
              f"{batch / (compute + comm['exact']):.0f} | {1e3 * comm['allreduce']:.1f} | "
              f"{1e3 * comm['exact']:.1f} |")
    print(f"\n(global batch max({args.batch}, ranks); compute assumed linear in the images "
          f"per rank; exact uses groups = max({args.groups}, ranks))")


if __name__ == "__main__":
    main()
