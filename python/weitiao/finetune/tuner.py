"""FineTuner: the d2l fine-tuning recipe as one object.

1. start from a pretrained source model; 2. copy every layer and parameter but the output
layer (the caller's model is never changed); 3. put a new output layer sized to the target
classes on top, Xavier-initialised; 4. train with a small learning rate, the new layer
``head_lr_mult`` (10) times faster; optionally freeze bottom stages and reuse source
classifier rows for shared labels. Images are preprocessed with the source model's own
pipeline (``model.preprocess``), so the normalisation always matches pretraining.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time

import numpy as np

from ..data.augment import preset_eval_crop
from ..data.loader import class_balanced_weights
from ..data.splits import stratified_split
from ..dist.launch import abort_job_on_error
from ..io.atomic import check_writable
from ..io.errors import CheckpointError, describe
from ..memory import array_cache
from ..models import ARCHITECTURES, create_model
from ..models.base import Classifier
from ..models.config import DEFAULT_LR, ModelConfig
from ..nn.loss import CrossEntropyLoss
from ..nn.norm import BatchNorm2d
from ..optim import SGD, CosineAnnealingLR, OneCycleLR, WarmupCosineLR
from . import batches
from . import checkpoint as training_checkpoint
from .ema import WeightEMA
from .freezing import apply_freeze, frozen_paths
from .evaluation import TTA_VIEWS, Evaluation, log_softmax, tta_views
from .guard import BatchGuard, check_finite_input, check_finite_output, diverged_error
from .history import EpochRecord, History
from .interrupt import StopOnInterrupt
from .label_map import ReuseReport, auto_mapping, copy_rows, resolve_mapping

FORMAT_VERSION = 1


class FineTuner:
    """Fine-tune a copy of ``source_model`` on a target dataset.

    ``num_classes`` or ``classes`` (names, in label order) sizes the new output layer.
    ``lr`` is the body's learning rate (default the source's ``config.finetune_lr``, measured
    per family with the bottom half frozen: 1e-2 for EfficientNet-Lite0, better than d2l's
    smaller rate on small targets, docs/experiments.md experiments 3, 5 and 7, and 1e-2 for
    families not measured; MobileNetV2's lower one, experiment 9; 1e-2 from scratch) for the
    mean cross-entropy with SGD momentum 0.9; the new head gets ``lr * head_lr_mult`` (default
    10, or 1 from scratch). ``freeze`` says which bottom layers keep their pretrained
    weights (no gradient, BatchNorm on its running statistics): "auto" (the default) is
    "bottom-half", the lower half of the stages rounded up (EfficientNet-Lite0: stem to
    stage4 of 9; ResNet-18: stem, layer1 and layer2), and nothing from scratch; it beat
    training every layer on three small targets (docs/experiments.md, experiment 7).
    Otherwise 0 or None (train every layer), a stage name ("layer2" freezes the stem up to
    layer2), a number of bottom stages, a list of stage names or module paths, or
    "backbone" (a linear probe). ``train_bn=False`` also freezes every BatchNorm (running
    statistics, no affine updates). ``layer_decay`` (e.g. 0.75) scales each stage's lr by
    decay ** (stages above it). ``reuse_classifier`` is a mapping target class -> source
    class (index or name) or "auto" (match names against the source's class names).
    ``from_scratch=True`` trains the same architecture from a random initialisation.
    ``image_size`` trains and predicts at another input size than pretraining (the resize
    before the centre crop scales with it); the normalisation stays the source's.
    ``bn_momentum`` (default 0.1, PyTorch's) replaces the BatchNorm momentum of the copy so
    its running statistics follow the target data within an epoch or two; TensorFlow-trained
    sources such as EfficientNet-Lite ship 0.01, which leaves evaluation normalising target
    images with mostly ImageNet statistics after a short fine-tuning. None keeps the
    source's.

    ``augment`` is the training augmentation: a preset name ("none", "light", "dihedral",
    "standard", "strong"; ``weitiao.data.AUGMENT_PRESETS``), a Preset, a callable transform,
    or None for the source model's own pretraining pipeline (``DEFAULT_AUGMENT``,
    "standard"). The default, "light" (the whole image, small affine changes, a flip), beat
    "standard" on small targets (docs/experiments.md, experiment 5). Evaluation and
    prediction use the matching pipeline: the whole image resized after "none", "light"
    and "dihedral", resize and centre crop otherwise; ``eval_crop`` (True or False)
    overrides that. ``class_weight`` ("balanced": n / (K * n_class), as scikit-learn; or a
    dict class name or index -> weight, others 1) weighs the training loss by the true
    class. ``soft_targets``, a (K, K) array whose row k is a probability distribution,
    trains label k towards row k instead of one-hot (soft cross-entropy): ordinal labels
    such as elpv's defect probabilities can share mass with their neighbours, e.g. row 1 =
    [0.15, 0.7, 0.15, 0].

    >>> ft = FineTuner(efficientnet_lite0(weights="imagenet"), classes=["ok", "defect"])
    >>> history = ft.fit(train_set, epochs=5, val=val_set)  # doctest: +SKIP
    """

    def __init__(self, source_model: Classifier, num_classes: int | None = None,
                 classes=None, *, lr: float | None = None, head_lr_mult: float | None = None,
                 weight_decay: float = 1e-4, momentum: float = 0.9, nesterov: bool = False,
                 freeze="auto", train_bn: bool = True, layer_decay: float | None = None,
                 label_smoothing: float = 0.0, from_scratch: bool = False,
                 reuse_classifier=None, image_size: int | None = None,
                 bn_momentum: float | None = 0.1, augment="light", eval_crop: bool | None = None,
                 class_weight=None, soft_targets=None, seed: int = 0):
        if not isinstance(source_model, Classifier):
            raise TypeError(f"FineTuner: source_model must be a weitiao model with a known "
                            f"output layer (weitiao.models), got {type(source_model).__name__}")
        self.classes = _class_names(num_classes, classes)
        self.seed = seed
        self.from_scratch = from_scratch
        rng = np.random.default_rng(seed)
        if from_scratch:
            if not source_model.arch:
                raise ValueError("FineTuner(from_scratch=True) needs a model built by a "
                                 "weitiao factory (resnet18, efficientnet_lite0, ...)")
            model = create_model(source_model.arch, num_classes=len(self.classes), rng=rng,
                                 **source_model.arch_kwargs)
            model.config = source_model.config
        else:
            model = copy.deepcopy(source_model)
            model.replace_head(len(self.classes), rng=rng)
        model.reseed(seed)  # dropout and drop-connect draw from the tuner's seed
        if image_size is not None:
            model.config = model.config.resized(image_size)
        if bn_momentum is not None:
            for m in model.modules():
                if isinstance(m, BatchNorm2d):
                    m.momentum = bn_momentum
        model.train()
        model.preprocess(train=True, augment=augment)  # an unknown preset fails here
        self.augment = augment
        self.eval_crop = preset_eval_crop(augment) if eval_crop is None else bool(eval_crop)
        if not (class_weight is None or class_weight == "balanced"
                or isinstance(class_weight, dict)):
            raise ValueError(f"FineTuner: class_weight must be None, 'balanced' or a dict "
                             f"class -> weight, got {class_weight!r}")
        self.class_weight = class_weight
        self.soft_targets = _soft_targets(soft_targets, len(self.classes))
        self.label_smoothing = label_smoothing
        self.source = source_model
        self.model = model
        self._auto_freeze = isinstance(freeze, str) and freeze == "auto"
        if self._auto_freeze:
            freeze = None if from_scratch else "bottom-half"
        self.frozen = apply_freeze(model, freeze, train_bn)
        self._freeze_spec = (freeze, train_bn)
        self.lr = lr if lr is not None else \
            (DEFAULT_LR if from_scratch else source_model.config.finetune_lr)
        self.head_lr_mult = head_lr_mult if head_lr_mult is not None else \
            (1.0 if from_scratch else 10.0)
        self.layer_decay = layer_decay
        self.hparams = dict(weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)
        self.optimizer = SGD(self._param_groups(), lr=self.lr, **self.hparams)
        self.loss_fn = CrossEntropyLoss(label_smoothing)
        self.history = History()
        self.reuse_report: ReuseReport | None = None
        self._cache: dict = {}
        self._ema: WeightEMA | None = None
        self._parallel = None  # a weitiao.dist.DataParallel while fit runs over ranks
        if reuse_classifier is not None:
            self.reuse_classifier(reuse_classifier)

    # ------------------------------------------------------------------ set-up
    def _param_groups(self) -> list[dict]:
        model = self.model
        head_ids = {id(p) for p in model.head.parameters()}
        head = [p for p in model.head.parameters() if p.requires_grad]
        groups = []
        if self.layer_decay is None:
            body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
            if body:
                groups.append({"name": "body", "params": body, "lr": self.lr})
        else:
            if not 0 < self.layer_decay <= 1:
                raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
            seen = set(head_ids)
            stages = list(model.stages)
            for depth, (name, paths) in enumerate(reversed(stages)):
                params = [p for path in paths for p in model.get_submodule(path).parameters()
                          if p.requires_grad and id(p) not in seen]
                seen.update(id(p) for p in params)
                if params:
                    groups.append({"name": name, "params": params,
                                   "lr": self.lr * self.layer_decay ** depth})
            rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
            if rest:
                groups.append({"name": "other", "params": rest, "lr": self.lr})
        if head:
            groups.append({"name": "head", "params": head, "lr": self.lr * self.head_lr_mult})
        if not groups:
            raise ValueError("FineTuner: every parameter is frozen; nothing to train")
        return groups

    def reuse_classifier(self, mapping="auto") -> ReuseReport:
        """Copy the source classifier's weight row and bias for target classes that exist
        in the source dataset. ``mapping``: target class -> source index or name, or
        "auto" to match the target class names against the source's names and synonyms
        (case, spaces and underscores ignored). Returns and keeps a report of what matched.

        >>> ft.reuse_classifier({"hotdog": "hotdog"})  # doctest: +SKIP
        """
        if self.from_scratch:
            raise ValueError("reuse_classifier: a model trained from scratch has no source "
                             "classifier to reuse")
        names = self.source.config.class_names
        if not names:
            raise ValueError("reuse_classifier: the source model has no class names "
                             "(model.config.class_names)")
        if isinstance(mapping, str):
            if mapping != "auto":
                raise ValueError(f"reuse_classifier: expected a dict or 'auto', got {mapping!r}")
            resolved = auto_mapping(self.classes, names, self.source.config.class_synonyms)
        else:
            resolved = resolve_mapping(dict(mapping), self.classes, names,
                                       self.source.config.class_synonyms)
        self.reuse_report = copy_rows(self.source, self.model, self.classes, resolved)
        return self.reuse_report

    def preprocess(self, train: bool = False):
        """The pipeline ``fit`` trains with (``train=True``) or ``evaluate`` and ``predict``
        use: this tuner's augmentation, then the source model's normalisation."""
        return self.model.preprocess(train=train, augment=self.augment,
                                     crop=None if train else self.eval_crop)

    def class_weights(self, targets) -> np.ndarray | None:
        """The per-class loss weights ``class_weight`` gives for training labels
        ``targets`` (None: unweighted)."""
        k = len(self.classes)
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            counts = np.bincount(np.asarray(targets, np.int64), minlength=k)
            return np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
        weights = np.ones(k)
        for key, w in self.class_weight.items():
            i = self.classes.index(str(key)) if str(key) in self.classes else key
            if not isinstance(i, (int, np.integer)) or not 0 <= i < k:
                raise ValueError(f"class_weight: {key!r} is neither a class name nor an "
                                 f"index in [0, {k}); classes are {self.classes}")
            weights[i] = float(w)
        return weights

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def _backbone_frozen(self) -> bool:
        head = {id(p) for name in self.model.head_chain
                for p in self.model.get_submodule(name).parameters()}
        return not any(p.requires_grad for p in self.model.parameters() if id(p) not in head)

    # ------------------------------------------------------------------ training
    @abort_job_on_error
    def fit(self, train, epochs: int = 5, val=None, *, batch_size: int = 32,
            scheduler="warmup_cosine", num_workers: int = 2, shuffle: bool = True,
            drop_last: bool = False, cache_features="auto", augment_passes: int = 1,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
            resume: bool = False, head_epochs: int = 0, sampler: str | None = None,
            early_stopping: int | None = None, restore_best: bool = False,
            ema: float | None = None, unfreeze: str | None = None, comm=None,
            groups: int | None = None, verbose: bool = True) -> History:
        """Train for ``epochs`` more epochs and return the History (also ``self.history``).

        ``train`` and ``val`` are datasets (ImageFolder, ArrayDataset, ...; without a
        transform they get ``self.preprocess``) or (images, labels) arrays; ``val`` may
        also be a fraction (e.g. 0.2) of ``train`` to hold out, stratified by class and
        drawn from ``seed``, so nothing is chosen on the test split.
        ``scheduler``: "warmup_cosine" (the default, per batch: linear warmup over the
        first 10 % of the steps, then cosine to 0 at the end of this call), "onecycle" (per
        batch), "cosine" (per epoch), None (a constant rate), or a callable
        ``optimizer -> scheduler`` stepped once per epoch. ``sampler="balanced"``
        draws each epoch's samples with replacement so every class comes equally often.
        ``head_epochs``: first train only the new head for that many epochs at a constant
        rate (the backbone frozen, its features cached: a linear probe), then everything
        for ``epochs`` (LP-FT, Kumar et al. 2022; fastai's ``fine_tune(freeze_epochs=)``),
        so the body's first updates come from a head that already fits.
        ``early_stopping`` (epochs of patience) stops when the validation accuracy has not
        improved for that many epochs; ``restore_best=True`` ends with the weights of the
        best validation epoch (ties: the lower validation loss), recorded in
        ``history.best_epoch``. ``ema`` (e.g. 0.999) keeps an exponential moving average of
        the weights (see :class:`WeightEMA`), validates with it and ends with it in the
        model. ``unfreeze="gradual"`` (ULMFiT) trains only the head in the first epoch,
        then one more stage from the top each epoch, everything from epoch
        ``len(stages) + 1`` on (what ``freeze`` holds stays frozen). ``cache_features``: with
        everything below the head frozen, compute backbone features once per augmentation
        pass (``augment_passes`` passes, reused in turn across epochs) and train the head on
        them; "auto" does so whenever the backbone is frozen. Ctrl-C stops cleanly at the
        next batch boundary; calling fit again continues.

        ``checkpoint``: a .safetensors path where the full training state is written
        (atomically) every ``checkpoint_every`` epochs and at the end. With ``resume=True``
        an existing checkpoint is loaded first and ``epochs`` counts the total: a run killed
        after epoch 3 of 5 and restarted with the same arguments trains epochs 4 and 5 and
        ends with the same weights as an uninterrupted run. A checkpoint does not hold the
        best epoch's weights of ``restore_best`` nor the ``ema`` average: a resumed run
        starts both afresh from the epoch it resumes at.

        ``comm`` (an mpi4py communicator such as ``MPI.COMM_WORLD``, or a
        :class:`weitiao.dist.DataParallel`) trains data-parallel: each rank computes its
        shard of every batch; under ``mpiexec`` it is picked up by itself. Only rank 0
        writes the checkpoint and shows progress bars. ``groups`` splits each batch into
        that many micro-batch groups (default 8 over MPI), BatchNorm statistics per group,
        summed in group order, so the weights are bit-identical for any number of ranks
        and to ``fit(groups=G)`` without MPI (docs/distributed.md).
        """
        from ..dist import data_parallel

        self._parallel = data_parallel(comm, groups)
        if self._parallel is not None:
            verbose = verbose and self._parallel.is_main
        if isinstance(epochs, bool) or not isinstance(epochs, int):
            raise TypeError(f"fit: epochs must be an int, got {type(epochs).__name__} "
                            f"{epochs!r}")
        if epochs < 1:
            raise ValueError(f"fit: epochs must be >= 1, got {epochs}")
        if resume and checkpoint is None:
            raise ValueError("fit(resume=True) needs checkpoint=PATH")
        if checkpoint is not None:
            if not str(checkpoint).endswith(".safetensors"):
                raise ValueError(f"fit: checkpoint must be a .safetensors path, got "
                                 f"{checkpoint}")
            check_writable(checkpoint)
        if isinstance(head_epochs, bool) or not isinstance(head_epochs, int) or head_epochs < 0:
            raise ValueError(f"fit: head_epochs must be an int >= 0, got {head_epochs!r}")
        sched_state, total_epochs = None, epochs
        if resume and os.path.exists(checkpoint):
            sched_state = training_checkpoint.load(self, checkpoint)
            epochs -= sum(e.stage != "head" for e in self.history.epochs)
        if resume and self._parallel is not None:
            self._parallel.check_same(len(self.history), "epochs found in the checkpoint "
                                      f"{checkpoint} (put it where every rank sees it)")
        if epochs <= 0:
            return self.history
        train_ds = batches.as_dataset(train, self.classes, "train")
        if isinstance(val, float):
            train_ds, val_ds = self._hold_out(train_ds, val)
        else:
            val_ds = batches.as_dataset(val, self.classes, "val") if val is not None else None
        if (early_stopping is not None or restore_best) and val_ds is None:
            raise ValueError("fit: early_stopping and restore_best need val (a dataset or a "
                             "fraction of train)")
        if early_stopping is not None and (isinstance(early_stopping, bool)
                                           or not isinstance(early_stopping, int)
                                           or early_stopping < 1):
            raise ValueError(f"fit: early_stopping must be a number of epochs >= 1, got "
                             f"{early_stopping!r}")
        if unfreeze not in (None, "gradual"):
            raise ValueError(f"fit: unfreeze must be None or 'gradual', got {unfreeze!r}")
        if sampler not in (None, "balanced"):
            raise ValueError(f"fit: sampler must be None or 'balanced', got {sampler!r}")
        needs_targets = sampler == "balanced" or self.class_weight == "balanced"
        targets = batches.targets_of(train_ds, "fit(sampler='balanced', class_weight="
                                     "'balanced')") if needs_targets else None
        self.loss_fn = CrossEntropyLoss(self.label_smoothing,
                                        weight=self.class_weights(targets))
        weights = class_balanced_weights(targets) if sampler == "balanced" else None
        use_cache = self._backbone_frozen() if cache_features == "auto" else bool(cache_features)
        if use_cache and not self._backbone_frozen():
            raise ValueError("fit(cache_features=True) needs everything below the head "
                             "frozen (freeze='backbone')")
        self._cache = {}  # features last one call: a changed backbone or data is never stale
        loader = batches.loader(train_ds, self.preprocess(train=True), batch_size, shuffle,
                                drop_last, self.seed, num_workers, weights)
        if head_epochs and not use_cache and \
                not any(e.stage == "head" for e in self.history.epochs):
            if self._fit_head(loader, val_ds, head_epochs, batch_size, drop_last,
                              shuffle, augment_passes, num_workers, verbose):
                return self.history  # interrupted
        steps = len(loader) if not use_cache else \
            batches.cached_steps(len(train_ds), batch_size, drop_last)
        sched, per_batch = self._scheduler(scheduler, total_epochs if resume else epochs, steps)
        if sched is not None and sched_state is not None:
            sched.load_state_dict(sched_state)
        from tqdm.auto import tqdm

        start = len(self.history)
        best = None  # (accuracy, -loss), epoch index, weights
        self._ema = WeightEMA(self.model, ema) if ema is not None else None
        averaged = self._ema.applied if self._ema is not None else contextlib.nullcontext
        epoch_bar = tqdm(range(start, start + epochs), desc="fit", unit="epoch",
                         disable=not verbose)
        with StopOnInterrupt() as stop, array_cache():
            for epoch in epoch_bar:
                if unfreeze == "gradual":
                    self._train_top_stages(epoch - start)
                if use_cache:
                    record = self._epoch_cached(loader, epoch, augment_passes,
                                                batch_size, drop_last, shuffle, sched,
                                                per_batch, stop, verbose)
                else:
                    record = self._epoch(loader, epoch, sched, per_batch, stop, verbose)
                if val_ds is not None and not record.interrupted:
                    with averaged():
                        ev = self._validate(record, val_ds, batch_size, num_workers)
                        score = (ev.accuracy, -ev.loss)
                        if best is None or score > best[0]:
                            best = (score, epoch, {k: np.array(v, copy=True) for k, v in
                                                   self.model.state_dict().items()}
                                    if restore_best else None)
                self.history.epochs.append(record)
                epoch_bar.set_postfix(loss=f"{record.loss:.3f}",
                                      val=f"{record.val_accuracy:.3f}"
                                      if record.val_accuracy is not None else "-")
                if record.interrupted:
                    break
                if sched is not None and not per_batch:
                    sched.step()
                done = epoch + 1 - start
                if checkpoint is not None and (done % checkpoint_every == 0 or done == epochs) \
                        and (self._parallel is None or self._parallel.is_main):
                    training_checkpoint.save(self, checkpoint, sched)
                if early_stopping is not None and best is not None and \
                        epoch - best[1] >= early_stopping:
                    break
        epoch_bar.close()
        if unfreeze == "gradual":
            self._train_top_stages(len(self.model.stages) + 1)
        if self._ema is not None:
            self._ema.copy_to_model()
            self._ema = None
        if best is not None:
            self.history.best_epoch = best[1] + 1
            if restore_best:
                self.model.load_state_dict(best[2])
        return self.history

    def _train_top_stages(self, stages: int) -> None:
        """Gradual unfreezing: only the top ``stages`` stages (and the head) train; the
        user's ``freeze`` is applied on top (the default "auto" is not: gradual unfreezing
        reaches every layer)."""
        all_stages = list(self.model.stages)
        for i, (_, paths) in enumerate(all_stages):
            for path in paths:
                module = self.model.get_submodule(path)
                if i >= len(all_stages) - stages:
                    module.unfreeze()
                else:
                    module.freeze()
        freeze, train_bn = self._freeze_spec
        apply_freeze(self.model, None if self._auto_freeze else freeze, train_bn)

    def _fit_head(self, loader, val_ds, epochs, batch_size, drop_last, shuffle,
                  passes, num_workers, verbose) -> bool:
        """LP-FT's first stage: only the new head trains, on cached backbone features, at
        the head's lr; the backbone and the optimizer are put back after. Returns whether
        Ctrl-C stopped it."""
        backbone = [p for p in frozen_paths(self.model, "backbone") if p not in self.frozen]
        for path in backbone:
            self.model.get_submodule(path).freeze()
        main = self.optimizer
        head = [p for p in self.model.head.parameters() if p.requires_grad]
        self.optimizer = SGD([{"name": "head", "params": head,
                               "lr": self.lr * self.head_lr_mult}], **self.hparams)
        interrupted = False
        try:
            with StopOnInterrupt() as stop, array_cache():
                for epoch in range(len(self.history), len(self.history) + epochs):
                    record = self._epoch_cached(loader, epoch, passes, batch_size,
                                                drop_last, shuffle, None, False, stop, verbose)
                    record.stage = "head"
                    if val_ds is not None and not record.interrupted:
                        self._validate(record, val_ds, batch_size, num_workers)
                    self.history.epochs.append(record)
                    interrupted = record.interrupted
                    if interrupted:
                        break
        finally:
            self.optimizer = main
            for path in backbone:
                self.model.get_submodule(path).unfreeze()
            apply_freeze(self.model, *self._freeze_spec)
            self._cache = {}
        return interrupted

    def _validate(self, record: EpochRecord, val_ds, batch_size: int,
                  num_workers: int) -> Evaluation:
        """Evaluate on ``val_ds`` and write the accuracy and loss into ``record``."""
        ev = self.evaluate(val_ds, batch_size=max(batch_size, 64), num_workers=num_workers)
        record.val_accuracy, record.val_loss = ev.accuracy, ev.loss
        return ev

    def _hold_out(self, train_ds, fraction: float):
        """(train, val) Subsets of ``train_ds``, ``fraction`` of each class in val."""
        if not 0 < fraction < 1:
            raise ValueError(f"fit: val as a fraction of train must be in (0, 1), got "
                             f"{fraction}")
        batches.targets_of(train_ds, "fit(val=fraction)")
        return tuple(stratified_split(train_ds, [1 - fraction, fraction], seed=self.seed))

    def _scheduler(self, scheduler, epochs: int, steps: int):
        if scheduler is None:
            return None, False
        if scheduler == "cosine":
            return CosineAnnealingLR(self.optimizer, T_max=epochs), False
        if scheduler == "warmup_cosine":
            total = max(epochs * steps, 1)
            return WarmupCosineLR(self.optimizer, total, min(round(0.1 * total), total - 1)), True
        if scheduler == "onecycle":
            return OneCycleLR(self.optimizer, [g["lr"] for g in self.optimizer.param_groups],
                              total_steps=max(epochs * steps, 2)), True
        if callable(scheduler):
            return scheduler(self.optimizer), False
        raise ValueError(f"fit: scheduler must be None, 'cosine', 'onecycle', 'warmup_cosine' "
                         f"or a callable optimizer -> scheduler, got {scheduler!r}")

    def _guard(self, forward) -> BatchGuard:
        """The guard of what ``forward`` runs through: the whole model, or the head alone
        when training on cached features."""
        if forward == self.model:
            return BatchGuard([self.model])
        return BatchGuard([self.model.get_submodule(n) for n in self.model.head_chain])

    def _train_step(self, x: np.ndarray, labels: np.ndarray, forward, backward,
                    guard: BatchGuard) -> tuple[float, int]:
        """One SGD step on batch ``x``. A non-finite loss leaves the model as it was before
        the batch (``guard``, from :meth:`_guard`) and raises: a ValueError if ``x`` holds
        NaN or Inf, else FloatingPointError."""
        guard.save()
        try:
            return self._step(forward(x), labels, backward)
        except FloatingPointError:
            guard.restore()
            check_finite_input(x)
            raise

    def _step(self, logits: np.ndarray, labels: np.ndarray, backward) -> tuple[float, int]:
        targets = labels if self.soft_targets is None else self.soft_targets[labels]
        loss = self.loss_fn(logits, targets)
        if not math.isfinite(loss):
            raise diverged_error(loss, self.optimizer.param_groups)
        self.optimizer.zero_grad()
        backward(self.loss_fn.backward())
        self.optimizer.step()
        return loss, int((logits.argmax(axis=1) == labels).sum())

    def _run_batches(self, batch_iter, total: int, epoch: int, forward, backward, sched,
                     per_batch: bool, stop, verbose: bool) -> EpochRecord:
        from tqdm.auto import tqdm

        self.model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        began = time.perf_counter()
        bar = tqdm(batch_iter, total=total, desc=f"epoch {epoch + 1}", unit="batch",
                   leave=False, disable=not verbose)
        interrupted = False
        guard = self._guard(forward)
        try:
            for x, y in bar:
                if self._parallel is None:
                    (loss, right), n = self._train_step(x, y, forward, backward, guard), len(y)
                    interrupted = stop.requested
                else:  # every rank stops after the same step, when any rank was interrupted
                    loss, right, n, interrupted = self._parallel.step(self, x, forward,
                                                                      backward, guard, stop)
                if n:  # n == 0: the whole batch was skipped, nothing to count or schedule
                    if self._ema is not None:
                        self._ema.update()
                    if sched is not None and per_batch:
                        sched.step()
                    loss_sum += loss * n
                    correct += right
                    seen += n
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if interrupted:
                    break
        finally:
            bar.close()
        seconds = time.perf_counter() - began
        return EpochRecord(epoch=epoch + 1, loss=loss_sum / max(seen, 1),
                           train_accuracy=correct / max(seen, 1), val_accuracy=None,
                           val_loss=None, examples_per_sec=seen / max(seconds, 1e-9),
                           seconds=seconds, lrs=[g["lr"] for g in self.optimizer.param_groups],
                           interrupted=interrupted)

    def _epoch(self, loader, epoch, sched, per_batch, stop, verbose) -> EpochRecord:
        loader.set_epoch(epoch)
        batch_iter = iter(loader) if self._parallel is None else \
            self._parallel.loader_batches(loader, epoch)
        return self._run_batches(batch_iter, len(loader), epoch, self.model,
                                 self.model.backward, sched, per_batch, stop, verbose)

    def _epoch_cached(self, loader, epoch, passes, batch_size, drop_last, shuffle,
                      sched, per_batch, stop, verbose) -> EpochRecord:
        p = epoch % max(int(passes), 1)
        began = time.perf_counter()
        if p not in self._cache:
            compute = batches if self._parallel is None else self._parallel
            self._cache[p] = compute.compute_features(self.model, loader, p, verbose)
        caching = time.perf_counter() - began
        features, labels = self._cache[p]
        order = loader.order(epoch)
        split = batches if self._parallel is None else self._parallel
        record = self._run_batches(
            split.array_batches(features, labels, order, batch_size, drop_last),
            batches.cached_steps(len(labels), batch_size, drop_last), epoch,
            self.model.forward_head, self.model.backward_head, sched, per_batch, stop,
            verbose)
        seen = record.examples_per_sec * record.seconds
        record.seconds += caching
        record.examples_per_sec = seen / max(record.seconds, 1e-9)
        return record

    def lr_find(self, train, **kwargs):
        """The learning-rate range test on a copy of this tuner (see
        :func:`weitiao.finetune.lr_find.lr_find`); returns lrs, losses and a suggestion.

        >>> result = ft.lr_find(train_set); result.suggestion  # doctest: +SKIP
        """
        from .lr_find import lr_find

        return lr_find(self, train, **kwargs)

    # ------------------------------------------------------------------ using the model
    @contextlib.contextmanager
    def _evaluating(self):
        """Eval mode and the array cache for the block, the previous mode restored after."""
        was_training = self.model.training
        self.model.eval()
        try:
            with array_cache():
                yield
        finally:
            self.model.train(was_training)

    def _probabilities(self, x: np.ndarray, tta: str | None, what: str,
                       first: int) -> np.ndarray:
        """Class probabilities of a preprocessed batch, averaged over the TTA views; a
        ValueError naming the images (numbered from ``first``) if some hold NaN or Inf."""
        views = tta_views(x, tta)
        probs = sum(np.exp(log_softmax(self.model(v))) for v in views) / len(views)
        check_finite_output(probs, x, what, first)
        return probs

    def evaluate(self, data, batch_size: int = 64, num_workers: int = 2,
                 tta: str | None = None) -> Evaluation:
        """Accuracy, loss, per-class recall and precision, macro-F1, balanced accuracy,
        the confusion matrix and each sample's class probabilities on ``data`` (evaluation
        preprocessing, model in eval mode; see :class:`Evaluation`). ``tta`` averages the
        probabilities over "flip" (2 views) or "dihedral" (8: flips and 90-degree turns).
        """
        if tta not in TTA_VIEWS:
            raise ValueError(f"evaluate: tta must be None, 'flip' or 'dihedral', got {tta!r}")
        ds = batches.as_dataset(data, self.classes, "data")
        loader = batches.loader(ds, self.preprocess(train=False), batch_size, False, False,
                                self.seed, num_workers)
        labels, probs = [], []
        mine, seen = (loader, 0) if self._parallel is None else \
            self._parallel.eval_batches(loader)
        with self._evaluating():
            for x, y in mine:
                probs.append(self._probabilities(x, tta, "evaluate", seen))
                labels.append(y)
                seen += len(y)
        k = len(self.classes)
        probs = np.concatenate(probs) if probs else np.zeros((0, k))
        labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        if self._parallel is not None:  # validation in fit: each rank did its batches
            probs, labels = self._parallel.gather_rows(probs), self._parallel.gather_rows(labels)
        return Evaluation.from_probabilities(probs, labels, self.classes)

    def predict(self, images, batch_size: int = 32,
                tta: str | None = None) -> tuple[list[str], np.ndarray]:
        """Class names and probabilities (N, num_classes) for images given as file paths,
        PIL images, HWC uint8 arrays, or already-preprocessed float32 (3, H, W) arrays; a
        single image gives a list of one. ``tta`` as in :meth:`evaluate`."""
        if tta not in TTA_VIEWS:
            raise ValueError(f"predict: tta must be None, 'flip' or 'dihedral', got {tta!r}")
        x = batches.prepare_images(images, self.preprocess(train=False))
        if len(x) == 0:
            return [], np.zeros((0, len(self.classes)), np.float32)
        with self._evaluating():
            probs = np.concatenate([self._probabilities(x[i:i + batch_size], tta,
                                                        "predict", i)
                                    for i in range(0, len(x), batch_size)])
        return [self.classes[i] for i in probs.argmax(axis=1)], probs.astype(np.float32)

    # ------------------------------------------------------------------ saving
    def metadata(self) -> dict:
        """What :meth:`load` needs besides the weights."""
        return {"format_version": FORMAT_VERSION, "arch": self.model.arch,
                "arch_kwargs": self.model.arch_kwargs, "classes": self.classes,
                "augment": self.augment if isinstance(self.augment, str) else None,
                "eval_crop": self.eval_crop,
                "config": self.model.config.to_dict(), "history": self.history.to_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and metadata (classes, preprocessing, architecture) to a
        .safetensors file, atomically: a crash mid-save leaves any old file intact."""
        from ..io import save_state_dict

        if not str(path).endswith(".safetensors"):
            raise ValueError(f"FineTuner.save: expected a .safetensors path, got {path}")
        save_state_dict(self.model.state_dict(), path,
                        metadata={"weitiao": json.dumps(self.metadata())})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FineTuner":
        """A FineTuner restored from :meth:`save`, ready to predict or train further."""
        from ..io import load_safetensors

        state, meta = load_safetensors(path)
        if "weitiao" not in meta:
            raise ValueError(f"FineTuner.load: {path} has no weitiao metadata (was it written "
                             f"by FineTuner.save?)")
        info = _saved_metadata(path, meta["weitiao"])
        try:
            model = create_model(info["arch"], num_classes=len(info["classes"]), rng=0,
                                 **info.get("arch_kwargs", {}))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata fields "
                                  f"'arch', 'classes' or 'arch_kwargs' are damaged "
                                  f"({type(e).__name__}: {e})") from None
        try:
            model.config = ModelConfig.from_dict(info["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field "
                                  f"'config' is damaged ({type(e).__name__}: {e})") from None
        try:
            model.load_state_dict(state)
        except ValueError as e:
            raise ValueError(f"FineTuner.load: {path}: {e}") from None
        tuner = cls(model, classes=info["classes"], bn_momentum=None,
                    augment=info.get("augment"), eval_crop=info.get("eval_crop"))
        tuner.model.load_state_dict(state)  # the copy got a fresh head; put the saved one back
        tuner.history = History.from_dict(info.get("history", {}))
        return tuner


def _saved_metadata(path, text: str) -> dict:
    """The JSON metadata of a FineTuner file, or a CheckpointError naming the file and the
    damaged field."""
    try:
        info = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field "
                              f"'weitiao' is not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field "
                              f"'weitiao' is not a JSON object")
    kinds = {"arch": str, "classes": list, "config": dict}
    for field, kind in kinds.items():
        if not isinstance(info.get(field), kind):
            raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field "
                                  f"{field!r} is missing or not a {kind.__name__}")
    if info["arch"] not in ARCHITECTURES:
        raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field 'arch' "
                              f"names an unknown architecture {info['arch']!r}")
    arch_kwargs = info.get("arch_kwargs", {})
    if not isinstance(arch_kwargs, dict) or {"weights", "num_classes", "rng"} & set(arch_kwargs):
        raise CheckpointError(f"FineTuner.load: {describe(path)}: the metadata field "
                              f"'arch_kwargs' must be an object of architecture options, "
                              f"without 'weights', 'num_classes' or 'rng' (loading a file "
                              f"never fetches weights), got {arch_kwargs!r}")
    return info


def _class_names(num_classes, classes) -> list[str]:
    if classes is not None:
        names = [str(c) for c in classes]
        if len(names) < 2:
            raise ValueError(f"FineTuner: classes must name at least two classes (a "
                             f"classifier with one class always predicts it, at loss 0), "
                             f"got {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"FineTuner: class names must be unique, got {names}")
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"FineTuner: num_classes={num_classes} but {len(names)} class "
                             f"names were given")
        return names
    if num_classes is None:
        raise ValueError("FineTuner: give num_classes or classes (the target class names)")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"FineTuner: num_classes must be an int >= 2 (a classifier with one "
                         f"class always predicts it, at loss 0), got {num_classes!r}")
    return [str(i) for i in range(num_classes)]


def _soft_targets(table, k: int) -> np.ndarray | None:
    """A (K, K) float32 table of target distributions, checked, or None."""
    if table is None:
        return None
    m = np.asarray(table, dtype=np.float64)
    if m.shape != (k, k):
        raise ValueError(f"FineTuner: soft_targets must be ({k}, {k}) for {k} classes, got "
                         f"shape {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m < 0) or not np.allclose(m.sum(axis=1), 1,
                                                                         atol=1e-6):
        raise ValueError("FineTuner: each row of soft_targets must be a probability "
                         "distribution (non-negative, summing to 1)")
    return np.ascontiguousarray(m, dtype=np.float32)
