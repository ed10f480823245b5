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

from .. import _C
from ..memory import array_cache
from ..models import create_model
from ..models.base import Classifier
from ..models.config import ModelConfig
from ..nn.loss import CrossEntropyLoss
from ..nn.norm import BatchNorm2d
from ..optim import SGD
from . import batches
from . import checkpoint as training_checkpoint
from .freezing import apply_freeze
from .history import EpochRecord, Evaluation, History, evaluation_from
from .interrupt import StopOnInterrupt
from .label_map import ReuseReport, auto_mapping, copy_rows, resolve_mapping

FORMAT_VERSION = 1


class FineTuner:
    """Fine-tune a copy of ``source_model`` on a target dataset.

    ``num_classes`` or ``classes`` (names, in label order) sizes the new output layer.
    ``lr`` is the body's learning rate (default 1e-3, or 1e-2 from scratch) for the mean
    cross-entropy with SGD momentum 0.9; the new head gets ``lr * head_lr_mult`` (default
    10, or 1 from scratch). ``freeze`` is None, a stage name ("layer2" freezes the stem up
    to layer2), a number of bottom stages, a list of stage names or module paths, or
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

    >>> ft = FineTuner(efficientnet_lite0(weights="imagenet"), classes=["ok", "defect"])
    >>> history = ft.fit(train_set, epochs=5, val=val_set)  # doctest: +SKIP
    """

    def __init__(self, source_model: Classifier, num_classes: int | None = None,
                 classes=None, *, lr: float | None = None, head_lr_mult: float | None = None,
                 weight_decay: float = 1e-4, momentum: float = 0.9, nesterov: bool = False,
                 freeze=None, train_bn: bool = True, layer_decay: float | None = None,
                 label_smoothing: float = 0.0, from_scratch: bool = False,
                 reuse_classifier=None, image_size: int | None = None,
                 bn_momentum: float | None = 0.1, seed: int = 0):
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
        if image_size is not None:
            model.config = model.config.resized(image_size)
        if bn_momentum is not None:
            for m in model.modules():
                if isinstance(m, BatchNorm2d):
                    m.momentum = bn_momentum
        model.train()
        self.source = source_model
        self.model = model
        self.frozen = apply_freeze(model, freeze, train_bn)
        self.lr = lr if lr is not None else (1e-2 if from_scratch else 1e-3)
        self.head_lr_mult = head_lr_mult if head_lr_mult is not None else \
            (1.0 if from_scratch else 10.0)
        self.layer_decay = layer_decay
        self.hparams = dict(weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)
        self.optimizer = SGD(self._param_groups(), lr=self.lr, **self.hparams)
        self.loss_fn = CrossEntropyLoss(label_smoothing)
        self.history = History()
        self.reuse_report: ReuseReport | None = None
        self._cache: dict = {}
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
    def fit(self, train, epochs: int = 5, val=None, *, batch_size: int = 32,
            scheduler=None, num_workers: int = 2, shuffle: bool = True,
            drop_last: bool = False, cache_features="auto", augment_passes: int = 1,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
            resume: bool = False, verbose: bool = True) -> History:
        """Train for ``epochs`` more epochs and return the History (also ``self.history``).

        ``train`` and ``val`` are datasets (ImageFolder, ArrayDataset, ...; without a
        transform they get ``model.preprocess``) or (images, labels) arrays.
        ``scheduler``: None, "cosine" (per epoch), "onecycle" (per batch), or a callable
        ``optimizer -> scheduler`` stepped once per epoch. ``cache_features``: with
        everything below the head frozen, compute backbone features once per augmentation
        pass (``augment_passes`` passes, reused in turn across epochs) and train the head on
        them; "auto" does so whenever the backbone is frozen. Ctrl-C stops cleanly at the
        next batch boundary; calling fit again continues.

        ``checkpoint``: a .safetensors path where the full training state is written
        (atomically) every ``checkpoint_every`` epochs and at the end. With ``resume=True``
        an existing checkpoint is loaded first and ``epochs`` counts the total: a run killed
        after epoch 3 of 5 and restarted with the same arguments trains epochs 4 and 5 and
        ends with the same weights as an uninterrupted run.
        """
        if epochs < 1:
            raise ValueError(f"fit: epochs must be >= 1, got {epochs}")
        if resume and checkpoint is None:
            raise ValueError("fit(resume=True) needs checkpoint=PATH")
        if checkpoint is not None and not str(checkpoint).endswith(".safetensors"):
            raise ValueError(f"fit: checkpoint must be a .safetensors path, got {checkpoint}")
        sched_state = None
        if resume and os.path.exists(checkpoint):
            sched_state = training_checkpoint.load(self, checkpoint)
            epochs -= len(self.history)
            if epochs <= 0:
                return self.history
        train_ds = batches.as_dataset(train, self.classes, "train")
        val_ds = batches.as_dataset(val, self.classes, "val") if val is not None else None
        use_cache = self._backbone_frozen() if cache_features == "auto" else bool(cache_features)
        if use_cache and not self._backbone_frozen():
            raise ValueError("fit(cache_features=True) needs everything below the head "
                             "frozen (freeze='backbone')")
        loader = batches.loader(train_ds, self.model, True, batch_size, shuffle, drop_last,
                                self.seed, num_workers)
        steps = len(loader) if not use_cache else \
            batches.cached_steps(len(train_ds), batch_size, drop_last)
        sched, per_batch = self._scheduler(scheduler, epochs + len(self.history) if resume
                                           else epochs, steps)
        if sched is not None and sched_state is not None:
            sched.load_state_dict(sched_state)
        from tqdm.auto import tqdm

        start = len(self.history)
        epoch_bar = tqdm(range(start, start + epochs), desc="fit", unit="epoch",
                         disable=not verbose)
        with StopOnInterrupt() as stop, array_cache():
            for epoch in epoch_bar:
                if use_cache:
                    record = self._epoch_cached(loader, train_ds, epoch, augment_passes,
                                                batch_size, drop_last, shuffle, sched,
                                                per_batch, stop, verbose)
                else:
                    record = self._epoch(loader, epoch, sched, per_batch, stop, verbose)
                if val_ds is not None and not record.interrupted:
                    ev = self.evaluate(val_ds, batch_size=max(batch_size, 64),
                                       num_workers=num_workers)
                    record.val_accuracy, record.val_loss = ev.accuracy, ev.loss
                self.history.epochs.append(record)
                epoch_bar.set_postfix(loss=f"{record.loss:.3f}",
                                      val=f"{record.val_accuracy:.3f}"
                                      if record.val_accuracy is not None else "-")
                if record.interrupted:
                    break
                if sched is not None and not per_batch:
                    sched.step()
                done = epoch + 1 - start
                if checkpoint is not None and (done % checkpoint_every == 0 or done == epochs):
                    training_checkpoint.save(self, checkpoint, sched)
        epoch_bar.close()
        return self.history

    def _scheduler(self, scheduler, epochs: int, steps: int):
        from ..optim import CosineAnnealingLR, OneCycleLR

        if scheduler is None:
            return None, False
        if scheduler == "cosine":
            return CosineAnnealingLR(self.optimizer, T_max=epochs), False
        if scheduler == "onecycle":
            return OneCycleLR(self.optimizer, [g["lr"] for g in self.optimizer.param_groups],
                              total_steps=max(epochs * steps, 2)), True
        if callable(scheduler):
            return scheduler(self.optimizer), False
        raise ValueError(f"fit: scheduler must be None, 'cosine', 'onecycle' or a callable "
                         f"optimizer -> scheduler, got {scheduler!r}")

    def _step(self, logits: np.ndarray, labels: np.ndarray, backward) -> tuple[float, int]:
        loss = self.loss_fn(logits, labels)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the loss became {loss} (learning rate {self.optimizer.param_groups[-1]['lr']:g}"
                f" too high?); the model was not updated with this batch")
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
        try:
            for x, y in bar:
                loss, right = self._step(forward(x), y, backward)
                if sched is not None and per_batch:
                    sched.step()
                loss_sum += loss * len(y)
                correct += right
                seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if stop.requested:
                    interrupted = True
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
        return self._run_batches(iter(loader), len(loader), epoch, self.model,
                                 self.model.backward, sched, per_batch, stop, verbose)

    def _epoch_cached(self, loader, dataset, epoch, passes, batch_size, drop_last, shuffle,
                      sched, per_batch, stop, verbose) -> EpochRecord:
        p = epoch % max(int(passes), 1)
        key = (p, id(dataset))
        began = time.perf_counter()
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[1] == id(dataset)}
            self._cache[key] = batches.compute_features(self.model, loader, p, verbose)
        caching = time.perf_counter() - began
        features, labels = self._cache[key]
        order = loader.order(epoch)
        record = self._run_batches(
            batches.array_batches(features, labels, order, batch_size, drop_last),
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

    def evaluate(self, data, batch_size: int = 64, num_workers: int = 2) -> Evaluation:
        """Accuracy, mean loss, per-class accuracy and confusion matrix on ``data``
        (evaluation preprocessing, model in eval mode)."""
        ds = batches.as_dataset(data, self.classes, "data")
        loader = batches.loader(ds, self.model, False, batch_size, False, False, self.seed,
                                num_workers)
        loss_sum, labels, preds = 0.0, [], []
        with self._evaluating():
            for x, y in loader:
                logits = self.model(x)
                loss, _ = _C.cross_entropy(logits, y, need_grad=False)
                loss_sum += loss * len(y)
                labels.append(y)
                preds.append(logits.argmax(axis=1))
        labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        return evaluation_from((loss_sum, len(labels)), labels, preds, self.classes)

    def predict(self, images, batch_size: int = 32) -> tuple[list[str], np.ndarray]:
        """Class names and probabilities (N, num_classes) for images given as file paths,
        PIL images, HWC uint8 arrays, or already-preprocessed float32 (3, H, W) arrays; a
        single image gives a list of one."""
        x = batches.prepare_images(images, self.model)
        with self._evaluating():
            probs = np.concatenate([_softmax(self.model(x[i:i + batch_size]))
                                    for i in range(0, len(x), batch_size)])
        return [self.classes[i] for i in probs.argmax(axis=1)], probs

    # ------------------------------------------------------------------ saving
    def metadata(self) -> dict:
        """What :meth:`load` needs besides the weights."""
        return {"format_version": FORMAT_VERSION, "arch": self.model.arch,
                "arch_kwargs": self.model.arch_kwargs, "classes": self.classes,
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
        info = json.loads(meta["weitiao"])
        model = create_model(info["arch"], num_classes=len(info["classes"]), rng=0,
                             **info.get("arch_kwargs", {}))
        model.config = ModelConfig.from_dict(info["config"])
        try:
            model.load_state_dict(state)
        except ValueError as e:
            raise ValueError(f"FineTuner.load: {path}: {e}") from None
        tuner = cls(model, classes=info["classes"], bn_momentum=None)
        tuner.model.load_state_dict(state)  # the copy got a fresh head; put the saved one back
        tuner.history = History.from_dict(info.get("history", {}))
        return tuner


def _class_names(num_classes, classes) -> list[str]:
    if classes is not None:
        names = [str(c) for c in classes]
        if not names:
            raise ValueError("FineTuner: classes is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"FineTuner: class names must be unique, got {names}")
        if num_classes is not None and num_classes != len(names):
            raise ValueError(f"FineTuner: num_classes={num_classes} but {len(names)} class "
                             f"names were given")
        return names
    if num_classes is None:
        raise ValueError("FineTuner: give num_classes or classes (the target class names)")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"FineTuner: num_classes must be a positive int, got {num_classes!r}")
    return [str(i) for i in range(num_classes)]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
