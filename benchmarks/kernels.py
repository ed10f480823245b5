"""Conv2d kernels against PyTorch CPU on every distinct conv shape of ResNet-18.

For each shape (batch 32, 224x224 images by default) times forward, backward-data and
backward-weight in weitiao (`weitiao._C`) and in PyTorch with NCHW and with channels_last
tensors, in the same process, at the same thread count, interleaved, and prints a markdown
table: median ms, GFLOP/s, the speed ratio against the faster PyTorch layout
(torch_time / weitiao_time, > 1: weitiao faster) and the fraction of this machine's sgemm
peak, measured through weitiao's own OpenBLAS.

    PYTHONPATH=python python benchmarks/kernels.py                 # 2 threads, batch 32
    PYTHONPATH=python python benchmarks/kernels.py --quick         # smoke run
    PYTHONPATH=python python benchmarks/kernels.py --write docs/performance.md
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from common import (OtherLoad, command_line, format_machine, machine_info, markdown_table,
                    replace_section, set_threads, sgemm_peak, time_interleaved)

# After common, which records the BLAS environment variables before torch loads.
import torch
import torch.nn.functional as F
from weitiao import _C

SECTION = "kernels"
CHECK_BATCH = 2
CHECK_RTOL = 1e-3  # max |weitiao - torch| / max |torch|, float32 sums of up to 4608 terms
PEAK_MIN_REPS = 7  # the sgemm peak is the fastest repetition, so give it a few chances


@dataclass(frozen=True)
class ConvShape:
    """One conv of torchvision's ResNet-18 (all bias-free, groups 1, dilation 1)."""

    layer: str
    uses: int  # how many convs of the network have this shape
    c: int
    oc: int
    size: int  # input height = width
    k: int
    stride: int
    padding: int

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.k) // self.stride + 1

    def label(self) -> str:
        s = f"/{self.stride}" if self.stride > 1 else ""
        return f"{self.k}x{self.k}{s} {self.c}→{self.oc}, {self.size}→{self.out_size}"

    def flops(self, n: int) -> float:
        """2 N OC OH OW (C/groups) KH KW: the same count for all three ops."""
        return 2.0 * n * self.oc * self.out_size**2 * self.c * self.k * self.k


# torchvision resnet18 at 224x224: the stem, then per stage a (possibly strided) first 3x3,
# a 1x1/2 downsample on the shortcut for stages 2-4, and the remaining 3x3s at full width.
RESNET18 = [
    ConvShape("conv1", 1, 3, 64, 224, 7, 2, 3),
    ConvShape("layer1", 4, 64, 64, 56, 3, 1, 1),
    ConvShape("layer2.0", 1, 64, 128, 56, 3, 2, 1),
    ConvShape("layer2 down", 1, 64, 128, 56, 1, 2, 0),
    ConvShape("layer2", 3, 128, 128, 28, 3, 1, 1),
    ConvShape("layer3.0", 1, 128, 256, 28, 3, 2, 1),
    ConvShape("layer3 down", 1, 128, 256, 28, 1, 2, 0),
    ConvShape("layer3", 3, 256, 256, 14, 3, 1, 1),
    ConvShape("layer4.0", 1, 256, 512, 14, 3, 2, 1),
    ConvShape("layer4 down", 1, 256, 512, 14, 1, 2, 0),
    ConvShape("layer4", 3, 512, 512, 7, 3, 1, 1),
]

OPS = ("forward", "backward-data", "backward-weight")


def make_ops(shape: ConvShape, n: int, seed: int = 0, lib=None, channels_last: bool = False):
    """{op: (weitiao_fn, torch_fn)} on fresh random inputs of batch ``n``; each fn returns
    its result (for backward-weight, the gradient array) so the caller can compare them.
    ``lib`` is the compiled module to time (default ``weitiao._C``; benchmarks/ab.py passes
    other builds of it). ``channels_last``: torch's tensors in that memory format (the
    values are the same), which oneDNN often runs faster.

    PyTorch's backward ops are called directly as ``aten.convolution_backward`` with an
    ``output_mask`` that asks for one gradient only. That is the op autograd itself calls for
    a conv (with the mask built from which inputs require grad), so it times the same
    oneDNN/ATen kernels while keeping the forward pass, graph building and the autograd
    engine out of the measurement, and it maps one to one onto weitiao's
    ``conv2d_backward_data`` / ``conv2d_backward_weight``. Both sides take plain contiguous
    NCHW float32 and allocate their result on every call; the NCHW torch tensors share
    memory with the NumPy arrays weitiao reads.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, shape.c, shape.size, shape.size), dtype=np.float32)
    # Kaiming-like scale keeps outputs O(1) so the relative error check is meaningful.
    w = rng.standard_normal((shape.oc, shape.c, shape.k, shape.k), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / (shape.c * shape.k * shape.k)))
    oh = shape.out_size
    dy = rng.standard_normal((n, shape.oc, oh, oh), dtype=np.float32)
    dw = np.zeros_like(w)
    xt, wt, dyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
    if channels_last:
        xt, wt, dyt = (t.contiguous(memory_format=torch.channels_last) for t in (xt, wt, dyt))
    st, pd = shape.stride, shape.padding
    conv_args = ([st, st], [pd, pd], [1, 1], False, [0, 0], 1)  # ..., transposed, out_pad, groups
    aten_bwd = torch.ops.aten.convolution_backward
    lib = lib or _C

    def wt_forward():
        return lib.conv2d_forward(x, w, None, st, pd)

    def wt_backward_data():
        return lib.conv2d_backward_data(dy, w, x.shape, st, pd, 1, 1)

    def wt_backward_weight():
        # Adds into dw: the timed loop keeps accumulating, which costs the same as writing.
        lib.conv2d_backward_weight(dy, x, dw, None, st, pd, 1, 1)
        return dw

    def torch_forward():
        return F.conv2d(xt, wt, None, st, pd)

    def torch_backward_data():
        return aten_bwd(dyt, xt, wt, None, *conv_args, [True, False, False])[0]

    def torch_backward_weight():
        return aten_bwd(dyt, xt, wt, None, *conv_args, [False, True, False])[1]

    return {
        "forward": (wt_forward, torch_forward),
        "backward-data": (wt_backward_data, torch_backward_data),
        "backward-weight": (wt_backward_weight, torch_backward_weight),
    }


def check_against_torch(shape: ConvShape, lib=None, channels_last: bool = False) -> None:
    """Abort unless weitiao (or ``lib``) and torch agree on all three ops at a small batch."""
    for op, (wt_fn, torch_fn) in make_ops(shape, CHECK_BATCH, seed=1, lib=lib,
                                          channels_last=channels_last).items():
        got = np.asarray(wt_fn())
        want = np.asarray(torch_fn().numpy())
        if got.shape != want.shape:
            sys.exit(f"kernels.py: {shape.layer} {shape.label()} {op}: weitiao gives shape "
                     f"{got.shape}, torch {want.shape}; not timing wrong code")
        rel = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))
        if not rel < CHECK_RTOL:
            sys.exit(f"kernels.py: {shape.layer} {shape.label()} {op}: weitiao and torch differ "
                     f"(max abs diff / max abs value = {rel:.2e}, expected < {CHECK_RTOL:g}); "
                     f"not timing wrong code")


def run(threads: int, batch: int, reps: int, warmup: int, min_rep_s: float
        ) -> tuple[dict[int, float], list[dict]]:
    """sgemm GFLOP/s at 1 and at ``threads`` threads, and one result dict per (shape, op)."""
    set_threads(threads)
    peaks = {}
    for n in sorted({1, threads}):
        peaks[n] = sgemm_peak(n, 2048, reps=max(reps, PEAK_MIN_REPS), warmup=warmup)
        print(f"sgemm 2048^3 through weitiao's OpenBLAS, {n} at once: {peaks[n]:.1f} GFLOP/s",
              file=sys.stderr)
    results = []
    for shape in RESNET18:
        check_against_torch(shape)
        check_against_torch(shape, channels_last=True)
        ops = make_ops(shape, batch)
        cl_ops = make_ops(shape, batch, channels_last=True)
        for op in OPS:
            wt_fn, torch_fn = ops[op]
            # Interleaved, who goes first rotating between repetitions.
            t = time_interleaved({"weitiao": wt_fn, "torch": torch_fn,
                                  "torch_cl": cl_ops[op][1]}, reps, warmup, min_rep_s,
                                 rotate=True)
            flops = shape.flops(batch)
            results.append({"shape": shape, "op": op, "wt": t["weitiao"], "nchw": t["torch"],
                            "cl": t["torch_cl"], "flops": flops,
                            "torch": min(t["torch"], t["torch_cl"], key=lambda x: x.median)})
            print(f"  {shape.layer:12s} {shape.label():26s} {op:16s} weitiao "
                  f"{t['weitiao'].median * 1e3:8.2f} ms  torch {t['torch'].median * 1e3:8.2f} "
                  f"ms, channels_last {t['torch_cl'].median * 1e3:8.2f} ms", file=sys.stderr)
        del ops, cl_ops
    return peaks, results


def table(peak: float, results: list[dict]) -> str:
    headers = ["layer", "conv", "uses", "op", "weitiao ms", "torch NCHW ms", "torch CL ms",
               "faster torch/weitiao", "weitiao GFLOP/s", "torch GFLOP/s", "weitiao % peak",
               "torch % peak", "weitiao spread", "torch spread"]
    rows = []
    for r in results:
        wt, th = r["wt"], r["torch"]
        wt_gf, torch_gf = r["flops"] / wt.median / 1e9, r["flops"] / th.median / 1e9
        rows.append([r["shape"].layer, r["shape"].label(), r["shape"].uses, r["op"],
                     f"{wt.median * 1e3:.2f}", f"{r['nchw'].median * 1e3:.2f}",
                     f"{r['cl'].median * 1e3:.2f}",
                     f"{th.median / wt.median:.2f}", f"{wt_gf:.1f}", f"{torch_gf:.1f}",
                     f"{100 * wt_gf / peak:.0f}%", f"{100 * torch_gf / peak:.0f}%",
                     f"{100 * wt.spread:.0f}%", f"{100 * th.spread:.0f}%"])
    # Whole-network totals, each shape weighted by how often ResNet-18 uses it. Training
    # never needs the gradient of the input image, so the stem's backward-data is left out.
    for op in (*OPS, "all"):
        chosen = [r for r in results if (op == "all" or r["op"] == op)
                  and not (r["op"] == "backward-data" and r["shape"].layer == "conv1")]
        wt = sum(r["shape"].uses * r["wt"].median for r in chosen)
        th = sum(r["shape"].uses * r["torch"].median for r in chosen)
        fl = sum(r["shape"].uses * r["flops"] for r in chosen)
        layouts = [sum(r["shape"].uses * r[k].median for r in chosen) for k in ("nchw", "cl")]
        rows.append(["**ResNet-18**", "all convs × uses", "", f"**{op}**", f"{wt * 1e3:.1f}",
                     f"{layouts[0] * 1e3:.1f}", f"{layouts[1] * 1e3:.1f}",
                     f"**{th / wt:.2f}**", f"{fl / wt / 1e9:.1f}",
                     f"{fl / th / 1e9:.1f}", f"{100 * fl / wt / 1e9 / peak:.0f}%",
                     f"{100 * fl / th / 1e9 / peak:.0f}%", "", ""])
    return markdown_table(headers, rows, align="llrl" + "r" * 10)


def report(args, peaks: dict[int, float], results: list[dict], load: OtherLoad) -> str:
    peak = peaks[args.threads]
    slower = [r for r in results if r["wt"].median > r["torch"].median]
    scaling = peak / peaks[1]
    lines = [
        f"### Conv2d kernels vs PyTorch: ResNet-18 shapes, batch {args.batch}, "
        f"{args.threads} thread{'s' if args.threads != 1 else ''}",
        "",
        f"Command (from the repository root): `{command_line()}`",
        "",
        format_machine(machine_info()),
        f"- **sgemm peak**: {peak:.1f} GFLOP/s: {args.threads} single-threaded "
        f"2048x2048x2048 sgemms at once (`_C.linear_forward`, weitiao's OpenBLAS, one per "
        f"thread, as weitiao's conv kernels run them), fastest of "
        f"{max(args.reps, PEAK_MIN_REPS)} repetitions; one alone gives {peaks[1]:.1f} "
        f"GFLOP/s, so {args.threads} threads scale it {scaling:.2f}x",
        f"- **run**: median of {args.reps} interleaved repetitions (weitiao, torch NCHW and "
        f"torch channels_last, who goes first rotating) of at least {args.min_rep_s:g} s "
        f"each, after {args.warmup} warm-up calls per op",
        f"- **machine load**: {load.describe()}",
    ]
    if args.threads > 1 and scaling < 0.75 * args.threads:
        lines.append(
            f"- **warning**: {args.threads} threads deliver only {scaling:.2f}x one thread's "
            f"sgemm throughput: the CPUs share physical cores or were busy (see machine "
            f"load); both libraries then lose time at thread barriers and the timings are "
            f"noisier (see the spread columns)")
    if load.other_cpus > 0.1 * args.threads:
        lines.append(
            f"- **warning**: other processes used {load.other_cpus:.2f} CPUs during the run; "
            f"both libraries ran on a busy machine, so rerun on an idle one before trusting "
            f"single rows")
    lines += [
        "",
        "GFLOP/s counts 2·N·OC·OH·OW·C·KH·KW flops for each of the three ops. "
        "torch is timed on NCHW and on channels_last (CL) tensors; \"faster torch\" is the "
        "faster of the two for that row, and its GFLOP/s, % peak and spread are that "
        "layout's. The ResNet-18 rows sum the per-row faster layout. "
        "torch/weitiao > 1 means weitiao is faster. % peak is relative to the sgemm peak "
        "at the same thread count. Spread is (slowest - fastest repetition) / median. "
        "PyTorch's backward ops are `aten.convolution_backward` with a one-gradient "
        "`output_mask`. The ResNet-18 rows weight each shape by how many convs use it and "
        "leave out the stem's backward-data, which training never needs.",
        "",
        table(peak, results),
        "",
        f"weitiao slower than PyTorch on {len(slower)} of {len(results)} (shape, op) pairs.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for both weitiao and torch (default 2)")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed repetitions per op, median reported (default 5; 2 with "
                             "--quick)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default 32; 8 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls per op before timing (default 2; 1 with --quick)")
    parser.add_argument("--min-rep-s", type=float, default=None,
                        help="shortest repetition in seconds; faster ops are called several "
                             "times per repetition (default 0.25; 0.05 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 8, 2 repetitions, 1 warm-up call")
    parser.add_argument("--write", metavar="PATH",
                        help=f"replace the <!-- {SECTION}:start/end --> section of this "
                             "markdown file (created if missing) with the results")
    args = parser.parse_args(argv)
    quick_or_full = {"batch": (8, 32), "reps": (2, 5), "warmup": (1, 2), "min_rep_s": (0.05, 0.25)}
    for name, (quick, full) in quick_or_full.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.threads < 1 or args.batch < 1 or args.reps < 1 or args.warmup < 0 or \
            args.min_rep_s < 0:
        parser.error("expected --threads, --batch, --reps >= 1 and --warmup, --min-rep-s >= 0")

    with OtherLoad() as load:
        peaks, results = run(args.threads, args.batch, args.reps, args.warmup, args.min_rep_s)
    text = report(args, peaks, results, load)
    print(text)
    if args.write:
        replace_section(args.write, SECTION, text)
        print(f"\nwrote the {SECTION} section of {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
