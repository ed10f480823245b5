"""What every weitiao classifier provides on top of Module: its preprocessing config, the
name of its output layer, its stages bottom to top, and a head that can be replaced."""
from __future__ import annotations

import numpy as np

from ..nn import init
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.module import (Module, backward_chain, check_planned, forward_chain,
                         forward_planned, mark_if_called_directly, plan_chain)
from .config import ModelConfig

_FLOAT32 = np.dtype(np.float32)


class CheckpointMismatch(ValueError):
    """A checkpoint whose parameters do not fit the model built. ``classes`` is the number of
    classes of its output layer when that is what differs (a model fine-tuned on other
    classes, whose body still fits), else None."""

    def __init__(self, message: str, classes: int | None = None):
        super().__init__(message)
        self.classes = classes


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

    @property
    def in_channels(self) -> int:
        """The channels of the images this model takes: those of the first convolution
        along ``chain`` (3 for the ImageNet models; a replaced stem conv changes it)."""
        for name in self.chain:  # lazily: the first child is the stem conv, read per forward
            for m in self.get_submodule(name).modules():
                if isinstance(m, Conv2d):
                    return m.in_channels
        raise TypeError(f"{type(self).__name__}: no Conv2d along its chain {self.chain}, so "
                        f"the input channels are unknown")

    def _check_input(self, x) -> None:
        """Refuse, saying what to do, what is not a batch of preprocessed images: checks of
        the type, dtype and shape only, so it costs nothing next to the forward."""
        if not (isinstance(x, np.ndarray) and (x.dtype is _FLOAT32 or x.dtype == _FLOAT32)
                and x.ndim == 4 and x.shape[1] == self.in_channels
                and (x.shape[0] or not self.training)):
            raise input_error(self, x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) for images x (N, in_channels, H, W), normalised as
        ``config``."""
        self._check_input(x)
        mark_if_called_directly(self)
        return forward_chain(self._chain_modules(), x)

    def backward(self, grad_out: np.ndarray):
        check_planned(self)
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
        self._check_input(x)
        modules = self._chain_modules()[:self._split()]
        plan_chain(modules, False)
        return forward_planned(modules, x)

    def forward_head(self, features: np.ndarray) -> np.ndarray:
        """The ``head_chain`` modules on features from :meth:`forward_features`; backward
        through them with :meth:`backward_head`."""
        modules = self._chain_modules()[self._split():]
        plan_chain(modules, False)
        return forward_planned(modules, features)

    def backward_head(self, grad_out: np.ndarray) -> None:
        """Backward through the head chain only (after :meth:`forward_head`)."""
        backward_chain(self._chain_modules()[self._split():], grad_out)

    def checkpoint_classes(self, state) -> int | None:
        """The number of classes of ``state``'s output layer when it differs from this
        model's but fits its input (a checkpoint fine-tuned on other classes), else None."""
        weight = state.get(f"{self.head_name}.weight") if hasattr(state, "get") else None
        shape = np.shape(weight) if weight is not None else ()
        if len(shape) == 2 and shape[1] == self.head.in_features \
                and shape[0] != self.num_classes:
            return int(shape[0])
        return None

    def load_state_dict(self, state, strict: bool = True) -> tuple[list[str], list[str]]:
        """As :meth:`Module.load_state_dict`; a checkpoint whose output layer has another
        number of classes says how to load it (:class:`CheckpointMismatch`)."""
        try:
            return super().load_state_dict(state, strict)
        except ValueError as e:
            k = self.checkpoint_classes(state)
            if k is None:
                raise
            arch = self.arch or type(self).__name__
            raise CheckpointMismatch(
                f"{e}. The checkpoint's output layer ({self.head_name}) has {k} classes and "
                f"this model's {self.num_classes}: build the model with num_classes={k} "
                f"(e.g. {arch}(num_classes={k}, weights=path)); a file written by "
                f"FineTuner.save loads with FineTuner.load(path), which also restores its "
                f"class names and preprocessing", k) from None

    def load_source(self, state, num_classes: int, rng=None) -> None:
        """Load a checkpoint into this model (built with the source's 1000 classes) and size
        the output layer to ``num_classes``: a checkpoint whose head already has
        ``num_classes`` outputs (a fine-tuned model) keeps its head; otherwise a new
        Xavier-initialised head goes on top (:meth:`replace_head`)."""
        if self.checkpoint_classes(state) == num_classes:
            self.replace_head(num_classes, rng=rng)
        self.load_state_dict(state)
        if num_classes != self.num_classes:
            self.replace_head(num_classes, rng=rng)

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

    def summary(self, input_size=None):
        """The layer table (see :meth:`weitiao.nn.Module.summary`) for a batch of one image
        of ``input_size`` (default ``config.input_size``; an int side, (C, H, W) or
        (N, C, H, W)), with a stage column and a rule line where each ``freeze=`` value of
        FineTuner cuts (``freeze=k``, the stage's name, "bottom-half", "backbone"; see
        :func:`weitiao.finetune.freezing.freeze_cuts`).

        >>> from weitiao.models import resnet18
        >>> s = resnet18(rng=0).summary()
        >>> s.total_params, s.cuts[2].values
        (11689512, (3, 'layer2', 'bottom-half'))
        """
        from ..finetune.freezing import freeze_cuts
        from ..nn.summary import summarize

        size = self.config.input_size if input_size is None else input_size
        arch = f" ({self.arch})" if self.arch else ""
        result = summarize(self, size, in_channels=self.in_channels, cuts=freeze_cuts(self),
                           head=self.head_chain,
                           title=f"{type(self).__name__}{arch}, {self.num_classes} classes")
        result.notes.append("freeze=None (or 0) trains every layer; FineTuner's default, "
                            "freeze='auto', is 'bottom-half' (nothing from scratch)")
        return result

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


def input_error(model: Classifier, x) -> Exception:
    """The error for an input ``model`` cannot take, saying how to make one it can."""
    name = model.arch or type(model).__name__
    c = model.in_channels
    expected = f"expected (N, {c}, H, W)"
    if not isinstance(x, np.ndarray):
        return TypeError(f"{name}: got a {type(x).__name__}; {expected} float32 images in a "
                         f"NumPy array: run images through model.preprocess() (weitiao.data "
                         f"transforms), or np.asarray(x, np.float32) for preprocessed values")
    shape, dtype = tuple(x.shape), x.dtype
    pixels = np.issubdtype(dtype, np.integer) or dtype == np.bool_
    convert = (f"; and {dtype} pixels need converting to float32 with the model's "
               f"normalisation (model.preprocess() does both)") if pixels else ""
    if x.ndim == 4 and shape[3] == c and shape[1] != c:
        return ValueError(f"{name}: got {shape}; {expected}: the channels come last (NHWC); "
                          f"use weitiao.data transforms (model.preprocess()) or "
                          f"x.transpose(0, 3, 1, 2){convert}")
    if x.ndim == 3 and c in (shape[0], shape[2]):
        fix = "x[None]" if shape[0] == c else "x.transpose(2, 0, 1)[None]"
        return ValueError(f"{name}: got one image {shape}; {expected}, a batch: {fix} makes "
                          f"a batch of one{convert}")
    if x.ndim != 4 or shape[1] != c:
        return ValueError(f"{name}: got {shape}; {expected} images")
    if pixels:
        mean, std = tuple(model.config.mean), tuple(model.config.std)
        return TypeError(f"{name}: got {dtype} images; the model takes float32 values "
                         f"normalised as in pretraining ([0, 1] RGB minus mean {mean}, over "
                         f"std {std}): run images through model.preprocess() (weitiao.data "
                         f"transforms), or compute ((x / 255 - mean) / std).astype(np.float32) "
                         f"per channel with model.config.mean and model.config.std")
    if dtype != np.float32:
        return TypeError(f"{name}: got {dtype} images; expected float32: x.astype(np.float32)")
    return ValueError(f"{name}: an empty batch (0 images) in training mode: nothing to train "
                      f"on, and BatchNorm cannot normalise it; skip empty batches (a weitiao "
                      f"DataLoader never yields one), or call model.eval() to run it")
