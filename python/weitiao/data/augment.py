"""Augmentation presets and the pipelines built from them.

A training pipeline is ConvertMode("RGB"), then the preset's geometric and colour steps,
then ToArray() and Normalize(mean, std) of the source model, so the normalisation always
matches pretraining whatever the augmentation. Each preset also says which evaluation
pipeline matches it: a model trained on whole images must be evaluated on whole images.

- "none": Resize((s, s)), the whole image, as at evaluation; eval: whole image;
- "light": Resize((s, s)), RandomAffine(10 degrees, 5 % shifts, scale 0.9 to 1.1,
  bilinear), RandomHorizontalFlip(); eval: whole image;
- "dihedral": "light", then RandomVerticalFlip() and RandomRot90(); eval: whole image;
- "standard": RandomResizedCrop(s, scale=(0.08, 1)), RandomHorizontalFlip(): the
  ImageNet recipe of the d2l chapter; eval: resize and centre crop;
- "strong": RandomResizedCrop(s, scale=(0.25, 1)), RandomHorizontalFlip(),
  ColorJitter(brightness=0.2, contrast=0.2); eval: resize and centre crop.

(s = ``config.input_size``.) ``AUGMENT_PRESETS`` is that table, in one place, and
``DEFAULT_AUGMENT`` names the preset used when none is asked for; both are meant to be
edited as measurements come in (docs/experiments.md).

>>> from weitiao.models.config import ModelConfig
>>> cfg = ModelConfig(input_size=32, resize_size=36)
>>> img = np.zeros((30, 40), np.uint8)
>>> train_pipeline(cfg, "dihedral")(img, np.random.default_rng(0)).shape
(3, 32, 32)
>>> preset_eval_crop("dihedral")
False
>>> eval_pipeline(cfg, crop=preset_eval_crop("dihedral"))(img).shape
(3, 32, 32)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .transforms import (CenterCrop, ColorJitter, Compose, ConvertMode, Normalize,
                         RandomAffine, RandomHorizontalFlip, RandomResizedCrop, RandomRot90,
                         RandomVerticalFlip, Resize, ToArray)


@dataclass(frozen=True)
class Preset:
    """An augmentation recipe. ``build(config)`` returns the list of steps that go between
    the leading ConvertMode("RGB") and the trailing ToArray() + Normalize(); ``eval_crop``
    says whether the matching evaluation pipeline centre-crops (True) or resizes the whole
    image to the input size (False); ``summary`` is one line for people.

    >>> AUGMENT_PRESETS["light"].eval_crop
    False
    """

    build: Callable
    eval_crop: bool
    summary: str = ""


def _whole_image(config) -> list:
    return [Resize((config.input_size, config.input_size),
                   interpolation=config.interpolation)]


def _light(config) -> list:
    return _whole_image(config) + [
        RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1),
                     interpolation="bilinear"),
        RandomHorizontalFlip()]


def _dihedral(config) -> list:
    return _light(config) + [RandomVerticalFlip(), RandomRot90()]


def _standard(config) -> list:
    return [RandomResizedCrop(config.input_size, scale=(0.08, 1.0),
                              interpolation=config.interpolation),
            RandomHorizontalFlip()]


def _strong(config) -> list:
    return [RandomResizedCrop(config.input_size, scale=(0.25, 1.0),
                              interpolation=config.interpolation),
            RandomHorizontalFlip(),
            ColorJitter(brightness=0.2, contrast=0.2)]


# The one table of presets: name -> recipe. Change what a preset holds here, and which
# one is the default in DEFAULT_AUGMENT below.
AUGMENT_PRESETS: dict[str, Preset] = {
    "none": Preset(_whole_image, eval_crop=False,
                   summary="the whole image resized to the input size, as at evaluation"),
    "light": Preset(_light, eval_crop=False,
                    summary="whole image, small rotations, shifts and zooms, left-right "
                            "flips: small targets where the whole image matters"),
    "dihedral": Preset(_dihedral, eval_crop=False,
                       summary="light plus vertical flips and quarter turns: images with "
                               "no canonical up (solar cells, microscopy, satellite tiles)"),
    "standard": Preset(_standard, eval_crop=True,
                       summary="ImageNet's random resized crop and left-right flip: "
                               "natural photos with the object anywhere"),
    "strong": Preset(_strong, eval_crop=True,
                     summary="milder random resized crop (scale 0.25-1), flip, brightness "
                             "and contrast jitter"),
}

# The preset used when none is asked for (train_pipeline, Classifier.preprocess).
DEFAULT_AUGMENT = "standard"


def _preset(augment) -> Preset:
    """The Preset for a name in AUGMENT_PRESETS, a Preset, or a callable transform (which
    becomes the whole augmentation part, evaluated with the centre crop)."""
    if augment is None:
        augment = DEFAULT_AUGMENT
    if isinstance(augment, Preset):
        return augment
    if isinstance(augment, str):
        try:
            return AUGMENT_PRESETS[augment]
        except KeyError:
            pass
    elif callable(augment):
        return Preset(lambda config: [augment], eval_crop=True, summary=repr(augment))
    raise ValueError(f"augment must be one of {list(AUGMENT_PRESETS)}, a Preset or a "
                     f"callable transform, got {augment!r}")


def preset_eval_crop(augment=None) -> bool:
    """Whether the evaluation pipeline matching ``augment`` (a preset name, a Preset, a
    callable, or None for ``DEFAULT_AUGMENT``) centre-crops (True) or resizes the whole
    image (False). A callable transform gets True, the source model's evaluation.

    >>> preset_eval_crop("standard"), preset_eval_crop("light")
    (True, False)
    """
    return _preset(augment).eval_crop


def _pipeline(config, steps: list) -> Compose:
    head = [ConvertMode("RGB")] if len(config.mean) == 3 else []
    return Compose(head + list(steps) + [ToArray(), Normalize(config.mean, config.std)])


def eval_pipeline(config, crop: bool = True) -> Compose:
    """The evaluation pipeline for ``config`` (a ModelConfig):

    - ``crop=True``: ConvertMode("RGB"), Resize(resize_size), CenterCrop(input_size),
      ToArray(), Normalize(mean, std): the source model's own evaluation;
    - ``crop=False``: ConvertMode("RGB"), Resize((input_size, input_size)), ToArray(),
      Normalize(mean, std): the **whole** image, squeezed to a square if it is not one,
      for targets whose edges matter (whole solar-cell images, small objects).

    Resizing uses ``config.interpolation``. Output: float32 (3, input_size, input_size).

    >>> from weitiao.models.config import ModelConfig
    >>> cfg = ModelConfig(input_size=32, resize_size=36)
    >>> [type(t).__name__ for t in eval_pipeline(cfg, crop=False).transforms]
    ['ConvertMode', 'Resize', 'ToArray', 'Normalize']
    """
    if not isinstance(crop, (bool, np.bool_)):
        raise ValueError(f"eval_pipeline: crop must be True or False, got {crop!r}")
    if crop:
        steps = [Resize(config.resize_size, interpolation=config.interpolation),
                 CenterCrop(config.input_size)]
    else:
        steps = _whole_image(config)
    return _pipeline(config, steps)


def train_pipeline(config, augment=None) -> Compose:
    """The training pipeline for ``config`` (a ModelConfig) with augmentation ``augment``:
    ConvertMode("RGB"), the preset's steps, ToArray(), Normalize(mean, std).

    ``augment`` is a name in ``AUGMENT_PRESETS`` ("none", "light", "dihedral", "standard",
    "strong"; see the module docstring), a ``Preset``, None for ``DEFAULT_AUGMENT``, or
    any callable transform ``t(img[, rng])``, which then replaces the whole geometric and
    colour part (the ConvertMode head and the ToArray/Normalize tail are still added, so
    the normalisation matches the source model). Such a callable must produce
    input_size x input_size images, or batches will not stack.

    >>> from weitiao.models.config import ModelConfig
    >>> cfg = ModelConfig(input_size=32, resize_size=36)
    >>> [type(t).__name__ for t in train_pipeline(cfg, "dihedral").transforms][1:-2]
    ['Resize', 'RandomAffine', 'RandomHorizontalFlip', 'RandomVerticalFlip', 'RandomRot90']
    >>> train_pipeline(cfg, RandomResizedCrop(32))(np.zeros((40, 40), np.uint8), 0).shape
    (3, 32, 32)
    """
    return _pipeline(config, _preset(augment).build(config))
