"""Whole-workload benchmark: weitiao vs PyTorch CPU on fine-tuning workloads.

Each (workload, library) runs in its own child process so peak RSS is that library's alone;
the children alternate (weitiao, torch, weitiao, torch) and each reports per-repetition
seconds after warm-up. The table gives medians, torch/weitiao (> 1: weitiao faster), peak
RSS and achieved GFLOP/s as a fraction of the measured sgemm peak.

    PYTHONPATH=python python benchmarks/run.py [--quick] [--threads 2] [--write docs/performance.md]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# name: (description, model, image size, mode, batch or None for --batch)
WORKLOADS = {
    "r18_train_224": ("ResNet-18 training step, 224", "resnet18", 224, "train", None),
    "r18_train_112": ("ResNet-18 training step, 112", "resnet18", 112, "train", None),
    "r18_train_96": ("ResNet-18 training step, 96", "resnet18", 96, "train", None),
    "r18_train_64": ("ResNet-18 training step, 64", "resnet18", 64, "train", None),
    "r18_frozen_224": ("ResNet-18 step, stem+layer1+layer2 frozen, 224", "resnet18", 224,
                       "frozen", None),
    "r18_head_cached": ("ResNet-18 head only, 5 epochs over N images, 224", "resnet18", 224,
                        "head", None),
    "lite0_train_224": ("EfficientNet-Lite0 training step, 224", "lite0", 224, "train", None),
    "lite0_train_112": ("EfficientNet-Lite0 training step, 112", "lite0", 112, "train", None),
    "lite0_train_96": ("EfficientNet-Lite0 training step, 96", "lite0", 96, "train", None),
    "lite0_train_64": ("EfficientNet-Lite0 training step, 64", "lite0", 64, "train", None),
    "r18_infer_224": ("ResNet-18 inference, 224", "resnet18", 224, "infer", None),
    "r18_infer_224_b8": ("ResNet-18 inference, 224", "resnet18", 224, "infer", 8),
    "r18_infer_224_b1": ("ResNet-18 inference, 224", "resnet18", 224, "infer", 1),
    "lite0_infer_224": ("EfficientNet-Lite0 inference, 224", "lite0", 224, "infer", None),
    "lite0_infer_224_b8": ("EfficientNet-Lite0 inference, 224", "lite0", 224, "infer", 8),
    "lite0_infer_224_b1": ("EfficientNet-Lite0 inference, 224", "lite0", 224, "infer", 1),
    "r50_train_224": ("ResNet-50 training step, 224", "resnet50", 224, "train", None),
    "lite0_demo_128": ("the demo's fine-tune step: EfficientNet-Lite0, bottom half frozen, 128",
                       "lite0", 128, "demo", None),
}
# PyTorch runs every workload in both memory formats and the ratio is taken against the
# faster, except the head-only run (minutes per run for torch; NCHW only).
TORCH_LAYOUTS = {"torch": "NCHW", "torch_cl": "channels_last"}
# Forward GFLOPs per 224x224 image (multiply-adds x 2), scaled by (size/224)^2.
FORWARD_GFLOP = {"resnet18": 3.64, "resnet50": 8.21, "lite0": 0.81}


# ---------------------------------------------------------------- children

def _weitiao_runner(model_name: str, size: int, mode: str, batch: int, images: int):
    import weitiao
    from weitiao.data import ArrayDataset
    from weitiao.finetune import FineTuner
    from weitiao.finetune.freezing import apply_freeze
    from weitiao.models import efficientnet_lite0, resnet18, resnet50
    from weitiao.nn import CrossEntropyLoss
    from weitiao.optim import SGD

    build = {"resnet18": resnet18, "resnet50": resnet50,
             "lite0": lambda **k: efficientnet_lite0(dropout_rate=0.0, drop_connect_rate=0.0,
                                                     **k)}[model_name]
    rng = np.random.default_rng(0)
    model = build(num_classes=10, rng=0)
    if mode == "head":
        model.config = model.config.resized(size)
        x = rng.standard_normal((images, 3, size, size), dtype=np.float32)
        data = ArrayDataset(x, np.arange(images) % 10, classes=[str(i) for i in range(10)])

        def run():
            tuner = FineTuner(model, classes=data.classes, freeze="backbone")
            tuner.fit(data, epochs=5, batch_size=batch, cache_features=True, verbose=False,
                      num_workers=0)
        return run
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    y = np.arange(batch) % 10
    if mode == "infer":
        model.eval()

        def infer():
            with weitiao.array_cache():
                model(x)
        return infer
    if mode == "frozen":
        for name in ("conv1", "bn1", "layer1", "layer2"):
            model.get_submodule(name).freeze()
    if mode == "demo":  # FineTuner's default freeze, as the demo trains
        apply_freeze(model, "bottom-half")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = SGD(params, lr=0.01, momentum=0.9)
    loss_fn = CrossEntropyLoss()

    def step():
        with weitiao.array_cache():
            loss_fn(model(x), y)
            opt.zero_grad()
            model.backward(loss_fn.backward())
            opt.step()
    return step


def _torch_model(model_name: str):
    import torch

    if model_name == "lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0", num_classes=10, dropout_rate=0.0,
                                      drop_connect_rate=0.0)
    from tests.torch_resnet import resnet18, resnet50

    torch.manual_seed(0)
    return {"resnet18": resnet18, "resnet50": resnet50}[model_name](num_classes=10)


def _demo_frozen_paths() -> list[str]:
    """The module paths FineTuner's default freeze takes in Lite0 (the same names in
    efficientnet_lite_pytorch's model)."""
    from weitiao.finetune.freezing import frozen_paths
    from weitiao.models import efficientnet_lite0

    return frozen_paths(efficientnet_lite0(num_classes=10, rng=0), "bottom-half")


def _torch_runner(model_name: str, size: int, mode: str, batch: int, images: int,
                  channels_last: bool):
    import torch

    model = _torch_model(model_name)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    loss_fn = torch.nn.CrossEntropyLoss()
    if mode == "head":
        x = torch.randn(images, 3, size, size)
        y = torch.arange(images) % 10
        head = model.fc
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc."))

        def run():
            opt = torch.optim.SGD(head.parameters(), lr=1e-2, momentum=0.9)
            for _ in range(5):
                for i in range(0, images, batch):
                    loss = loss_fn(model(x[i:i + batch]), y[i:i + batch])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        return run
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    y = torch.arange(batch) % 10
    if mode == "infer":
        model.eval()

        def infer():
            with torch.no_grad():
                model(x)
        return infer
    frozen = {"frozen": ("conv1", "bn1", "layer1", "layer2"),
              "demo": _demo_frozen_paths()}.get(mode, ())
    for name in frozen:  # no gradient, BatchNorm on its running statistics
        module = model.get_submodule(name)
        module.requires_grad_(False)
        module.eval()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def child(args) -> None:
    """Run one workload for one library and print JSON: seconds per repetition, peak RSS."""
    description, model_name, size, mode, _ = WORKLOADS[args.child]
    if args.lib in TORCH_LAYOUTS:
        import torch

        torch.set_num_threads(args.threads)
        fn = _torch_runner(model_name, size, mode, args.batch, args.images,
                           channels_last=args.lib == "torch_cl")
    else:
        import weitiao

        weitiao.set_num_threads(args.threads)
        fn = _weitiao_runner(model_name, size, mode, args.batch, args.images)
    for _ in range(args.warmup):
        fn()
    seconds = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


# ---------------------------------------------------------------- parent

def run_child(name: str, lib: str, args) -> dict:
    # The head-only run is a whole 5-epoch fine-tuning (minutes for torch at 1,000 images):
    # one timed run, no warm-up run, in each round.
    reps, warmup = (1, 0) if WORKLOADS[name][3] == "head" else (args.reps, args.warmup)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--lib", lib,
           "--threads", str(args.threads), "--batch", str(batch_of(name, args)), "--reps",
           str(reps), "--warmup", str(warmup), "--images", str(args.images)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise RuntimeError(f"{name} {lib} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch_of(name: str, args) -> int:
    return WORKLOADS[name][4] or args.batch


def libs_of(name: str) -> tuple[str, ...]:
    return ("weitiao", "torch") if WORKLOADS[name][3] == "head" else ("weitiao", *TORCH_LAYOUTS)


def gflop(name: str, batch: int, images: int) -> float:
    _, model_name, size, mode, _ = WORKLOADS[name]
    per_image = FORWARD_GFLOP[model_name] * (size / 224) ** 2
    if mode == "head":
        return per_image * images  # the work a cached run cannot avoid: one forward pass
    return per_image * batch * (1 if mode == "infer" else 3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child")
    parser.add_argument("--lib", choices=("weitiao", *TORCH_LAYOUTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating (weitiao, torch) child pairs per workload")
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 rep, 200 images")
    parser.add_argument("--write", help="markdown file whose workloads section to replace")
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.quick:
        args.batch, args.reps, args.images, args.rounds = 8, 1, 200, 1
    from common import (OtherLoad, command_line, cpu_model, format_machine, isa,
                        machine_info, markdown_table, publish, sgemm_peak)

    import weitiao

    weitiao.set_num_threads(args.threads)
    peak = sgemm_peak(args.threads)
    rows = []
    with OtherLoad() as load:
        for name in args.only or WORKLOADS:
            libs = libs_of(name)
            samples = {lib: [] for lib in libs}
            rss = {lib: 0.0 for lib in libs}
            for _ in range(args.rounds):
                for lib in libs:
                    result = run_child(name, lib, args)
                    samples[lib] += result["seconds"]
                    rss[lib] = max(rss[lib], result["rss_mb"])
            med = {lib: statistics.median(s) for lib, s in samples.items()}
            spread = {lib: (max(s) - min(s)) / med[lib] for lib, s in samples.items()}
            best = min(TORCH_LAYOUTS.keys() & med.keys(), key=med.get)
            rate = gflop(name, batch_of(name, args), args.images) / med["weitiao"]
            rows.append([WORKLOADS[name][0], str(batch_of(name, args)),
                         f"{med['weitiao']:.3f}", f"{med['torch']:.3f}",
                         f"{med['torch_cl']:.3f}" if "torch_cl" in med else "-",
                         f"**{med[best] / med['weitiao']:.2f}**", f"{rss['weitiao']:.0f}",
                         f"{rss[best]:.0f}", f"{rate:.1f}", f"{rate / peak:.0%}",
                         f"{spread['weitiao']:.0%}", f"{spread[best]:.0%}"])
            print(rows[-1], flush=True)
    table = markdown_table(["workload", "batch", "weitiao s", "torch NCHW s",
                            "torch channels_last s", "faster torch/weitiao",
                            "weitiao peak RSS MB", "faster torch peak RSS MB",
                            "weitiao GFLOP/s", "of sgemm peak", "weitiao spread",
                            "faster torch spread"], rows)
    publish([
        f"### Workloads vs PyTorch, {args.threads} threads, {isa()} ({cpu_model()})",
        f"Command: `{command_line()}`",
        format_machine(machine_info()),
        f"- **sgemm peak**: {peak:.1f} GFLOP/s ({args.threads} concurrent single-threaded "
        f"2048^3 sgemms through weitiao's OpenBLAS)\n- **machine load**: {load.describe()}\n"
        f"- **run**: {args.rounds} alternating child-process rounds per workload, each "
        f"{args.warmup} warm-up and {args.reps} timed repetitions (the head-only run: one "
        f"timed run, no warm-up); medians over all repetitions; peak RSS is the child's "
        f"maximum resident set",
        "Seconds are per training step (forward, backward, SGD with momentum), per inference "
        "batch (batch 1: the latency of one image), or for the whole 5-epoch head-only run. "
        "PyTorch runs in both memory formats (NCHW and channels_last, torch.backends.mkldnn "
        "defaults) and the ratio is against the faster of the two (the head-only run: NCHW "
        "only). GFLOP/s counts forward multiply-adds "
        "x 2, x 3 for a training step; the cached head-only run is credited one forward "
        "pass over its images. Spread is (slowest - fastest repetition) / median.",
        table,
    ], args.write, f"workloads-{isa()}")


if __name__ == "__main__":
    main()
