"""What a pretrained model carries besides weights: its input preprocessing and the class
names of its source dataset, so pipelines read them from the model."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The body rate of a family not measured, of training from scratch and of the linear probe
DEFAULT_LR = 1e-2


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The 1000 ImageNet-1k class names in their standard order (index 934 is "hotdog"),
    and for each the comma-separated synonyms of its WordNet synset."""
    text = resources.files(__package__).joinpath("imagenet_classes.tsv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    names = tuple(r["name"] for r in rows)
    synonyms = tuple(tuple(s.strip() for s in r["synonyms"].split(",")) for r in rows)
    return names, synonyms


@dataclass(frozen=True)
class ModelConfig:
    """Preprocessing and source classes of a model.

    ``input_size`` is the side of the square crop the network sees, ``resize_size`` the
    shorter side images are resized to before the centre crop at evaluation, ``mean`` and
    ``std`` the per-channel normalisation of [0, 1] RGB values used in pretraining.
    ``finetune_lr`` is the body learning rate :class:`~weitiao.finetune.FineTuner` starts
    from when given none: the rate measured best for this family with the bottom half frozen
    on the validation splits of docs/experiments.md (1e-2 for EfficientNet-Lite0,
    experiment 7; MobileNetV2's own, experiment 9).
    """

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    source: str = "ImageNet-1k"
    class_names: tuple[str, ...] = field(default=(), repr=False)
    class_synonyms: tuple[tuple[str, ...], ...] = field(default=(), repr=False)
    finetune_lr: float = DEFAULT_LR

    @classmethod
    def imagenet(cls, **overrides) -> "ModelConfig":
        names, synonyms = imagenet_classes()
        return cls(class_names=names, class_synonyms=synonyms, **overrides)

    def resized(self, input_size: int) -> "ModelConfig":
        """The same preprocessing at another input size; the resize before the centre
        crop keeps pretraining's ratio (256/224 for ImageNet models)."""
        if not isinstance(input_size, int) or input_size < 8:
            raise ValueError(f"image_size must be an int >= 8, got {input_size!r}")
        resize = int(round(input_size * self.resize_size / self.input_size))
        return replace(self, input_size=input_size, resize_size=resize)

    def to_dict(self) -> dict:
        """JSON-friendly form (class names included) for checkpoint metadata."""
        return {"input_size": self.input_size, "resize_size": self.resize_size,
                "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "source": self.source,
                "class_names": list(self.class_names), "finetune_lr": self.finetune_lr}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(input_size=int(d["input_size"]), resize_size=int(d["resize_size"]),
                   mean=tuple(d["mean"]), std=tuple(d["std"]),
                   interpolation=d.get("interpolation", "bilinear"),
                   source=d.get("source", ""), class_names=tuple(d.get("class_names", ())),
                   finetune_lr=float(d.get("finetune_lr", DEFAULT_LR)))
