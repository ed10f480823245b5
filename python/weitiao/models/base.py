"""What every weitiao classifier provides on top of Module: its preprocessing config, the
name of its output layer, its stages bottom to top, and a head that can be replaced."""
from __future__ import annotations

import numpy as np

from ..nn import init
from ..nn.linear import Linear
from ..nn.module import Module, backward_chain, forward_chain, plan_chain
from .config import ModelConfig


class Classifier(Module):
    """A network run as a chain of named children (``chain``), ending in a Linear output
    layer (``head_name``). Subclasses fill ``chain``, ``head_name``, ``stages`` and
    ``config``.

    ``stages`` lists (stage name, [child names]) from the input upwards; freezing "the
    bottom k stages" or "up to layer2" is expressed in these names.
    """

    chain: tuple[str, ...] = ()
    head_name: str = "fc"
    # The tail of ``chain`` that runs on cached features (the head and any dropout before it).
    head_chain: tuple[str, ...] = ("fc",)
    # Set by the factory functions: how to build this architecture again (save/load, from
    # scratch).
    arch: str = ""
    arch_kwargs: dict = {}
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    config: ModelConfig = ModelConfig()

    def _chain_modules(self) -> list[Module]:
        return [self.get_submodule(name) for name in self.chain]

    def plan_backward(self, input_needs_grad: bool) -> bool:
        object.__setattr__(self, "input_needs_grad", bool(input_needs_grad))
        needs = plan_chain(self._chain_modules(), input_needs_grad)
        object.__setattr__(self, "keeps_activations", self.training and needs)
        return needs

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) for images x (N, 3, H, W), normalised as ``config``."""
        return forward_chain(self._chain_modules(), x)

    def backward(self, grad_out: np.ndarray):
        return backward_chain(self._chain_modules(), grad_out)

    @property
    def head(self) -> Linear:
        """The output layer."""
        return self.get_submodule(self.head_name)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def _split(self) -> int:
        return len(self.chain) - len(self.head_chain)

    def forward_features(self, x: np.ndarray) -> np.ndarray:
        """Everything below ``head_chain``, (N, features): what a frozen backbone hands the
        head, and what feature caching stores. Keeps nothing for backward."""
        modules = self._chain_modules()[:self._split()]
        plan_chain(modules, False)
        for m in modules:
            x = m.forward(x)
        return x

    def forward_head(self, features: np.ndarray) -> np.ndarray:
        """The ``head_chain`` modules on features from :meth:`forward_features`; backward
        through them with :meth:`backward_head`."""
        modules = self._chain_modules()[self._split():]
        plan_chain(modules, False)
        for m in modules:
            features = m.forward(features)
        return features

    def backward_head(self, grad_out: np.ndarray) -> None:
        """Backward through the head chain only (after :meth:`forward_head`)."""
        backward_chain(self._chain_modules()[self._split():], grad_out)

    def replace_head(self, num_classes: int, rng=None) -> Linear:
        """Put a new output layer with ``num_classes`` outputs in place of the old one:
        weight Xavier-uniform (as d2l's fine-tuning chapter), bias PyTorch's default.
        Returns the new layer."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"replace_head: num_classes must be a positive int, got "
                             f"{num_classes!r}")
        gen = init.as_generator(rng)
        head = Linear(self.head.in_features, num_classes, rng=gen)
        init.xavier_uniform_(head.weight, rng=gen)
        parent, _, name = self.head_name.rpartition(".")
        setattr(self.get_submodule(parent), name, head)
        return head

    def stage_names(self) -> list[str]:
        """Stage names from the input upwards, e.g. ["stem", "layer1", ..., "layer4"]."""
        return [name for name, _ in self.stages]

    def preprocess(self, train: bool = False, augment=None, crop: bool | None = None):
        """The transform pipeline for this model: ConvertMode("RGB"), the geometry, then
        the model's normalisation. Images in, float32 (3, input_size, input_size) out.

        ``augment`` picks the training augmentation: a name in
        ``weitiao.data.AUGMENT_PRESETS`` ("none", "light", "dihedral", "standard",
        "strong"), a ``Preset``, a callable transform, or None for
        ``weitiao.data.DEFAULT_AUGMENT`` ("standard": random resized crop and flip, as in
        pretraining). For ``train=False`` it picks the matching evaluation: resize +
        centre crop after "standard" and "strong", the whole image resized after "none",
        "light" and "dihedral"; ``crop`` (True or False) overrides that choice and only
        applies to the evaluation pipeline.

        >>> from weitiao.models import resnet18
        >>> net = resnet18(num_classes=2, rng=0)
        >>> [type(t).__name__ for t in net.preprocess(augment="light").transforms]
        ['ConvertMode', 'Resize', 'ToArray', 'Normalize']
        """
        from ..data.augment import eval_pipeline, preset_eval_crop, train_pipeline

        if train:
            return train_pipeline(self.config, augment)
        return eval_pipeline(self.config,
                             crop=preset_eval_crop(augment) if crop is None else crop)
