"""`python -m weitiao pretrain`: make a source model for the split Fashion-MNIST experiments.

Trains ``resnet_small`` from scratch on some Fashion-MNIST classes (all their training
images) and saves it in FineTuner's .safetensors format (weights, architecture,
preprocessing, the source class names), so both of these load it::

    source = create_model("resnet_small", weights="resnet_small_fmnist5.safetensors")
    tuner = FineTuner.load("resnet_small_fmnist5.safetensors")

Preprocessing. The ImageNet-style pipeline every model carries (``default_pipeline``:
RandomResizedCrop with scale 0.08-1 for training, Resize + CenterCrop for evaluation) suits
photos, not 28x28 centred garments: a crop of 8 % of the area is a 8x8 patch of a sleeve.
So the images are converted once into float32 (N, 3, 28, 28) arrays normalised with the
model's Fashion-MNIST mean and std (a grey image on all three channels), and training
augments them with a shift of up to 2 pixels and a horizontal flip
(:class:`ShiftFlip`, the usual small-image augmentation). Evaluation uses the arrays as
they are. The same helpers build the target datasets of the experiments.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import numpy as np

from .data import ArrayDataset, FashionMNIST
from .data.fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .data.transforms import Transform
from .models.config import ModelConfig
from .models.small_resnet import fashion_mnist_config, resnet_small
from .nn.init import as_generator


class ShiftFlip(Transform):
    """Shift a float (C, H, W) image by up to ``pad`` pixels each way (filling with
    ``fill``, one value per channel: the normalised value of a black pixel) and mirror it
    left to right with probability 1/2.

    >>> t = ShiftFlip(pad=2, fill=(0.0,))
    >>> t(np.ones((1, 4, 4), np.float32), np.random.default_rng(0)).shape
    (1, 4, 4)
    """

    random = True

    def __init__(self, pad: int = 2, fill: Sequence[float] = (0.0, 0.0, 0.0)):
        self.pad = int(pad)
        self.fill = np.asarray(fill, dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, img, rng=None):
        rng = as_generator(rng)
        c, h, w = img.shape
        p = self.pad
        dy, dx = (int(v) for v in rng.integers(-p, p + 1, size=2))
        out = np.empty((c, h, w), dtype=np.float32)
        out[...] = self.fill
        ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy),
                                                                   slice(-dy, h))
        xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx),
                                                                   slice(-dx, w))
        out[:, yd, xd] = img[:, ys, xs]
        if rng.random() < 0.5:
            out = out[:, :, ::-1].copy()
        return out

    def _args(self) -> str:
        return f"pad={self.pad}"


def parse_classes(text: str | Sequence) -> list[int]:
    """Fashion-MNIST class indices from "0,1,2" or names ("Trouser,Bag"), in the given
    order.

    >>> parse_classes("5,6,7"), parse_classes("Trouser,Bag")
    ([5, 6, 7], [1, 8])
    """
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    lookup = {c.lower(): i for i, c in enumerate(FASHION_MNIST_CLASSES)}
    out = []
    for item in items:
        if isinstance(item, (int, np.integer)) or str(item).isdigit():
            idx = int(item)
            if not 0 <= idx < len(FASHION_MNIST_CLASSES):
                raise ValueError(f"Fashion-MNIST class index {idx} is outside 0..9")
        elif str(item).lower() in lookup:
            idx = lookup[str(item).lower()]
        else:
            raise ValueError(f"{item!r} is not a Fashion-MNIST class index (0-9) or name "
                             f"({', '.join(FASHION_MNIST_CLASSES)})")
        out.append(idx)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"classes must be distinct and non-empty, got {items}")
    return out


def model_inputs(images: np.ndarray, config: ModelConfig) -> np.ndarray:
    """uint8 (N, 28, 28) grey images -> float32 (N, 3, 28, 28) normalised as ``config``."""
    x = images.astype(np.float32) / 255.0
    mean = np.asarray(config.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(config.std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x[:, None] - mean) / std)


def fashion_mnist_split(classes: Sequence[int], train: bool = True,
                        per_class: int | None = None, seed: int = 0, root=None,
                        config: ModelConfig | None = None, augment: bool = False,
                        data: FashionMNIST | None = None) -> ArrayDataset:
    """The images of Fashion-MNIST ``classes`` as model inputs, relabelled 0..k-1 in the
    order given (class names kept). ``per_class``: that many images of each class, drawn
    without replacement with ``seed`` (None: all). ``augment``: attach :class:`ShiftFlip`.
    ``data``: an already loaded FashionMNIST split to take them from (else read from
    ``root``).

    >>> target = fashion_mnist_split([5, 6, 7, 8, 9], per_class=10, seed=1)  # doctest: +SKIP
    >>> len(target), target.classes[0]  # doctest: +SKIP
    (50, 'Sandal')
    """
    config = config or fashion_mnist_config()
    full = data if data is not None else FashionMNIST(root=root, train=train)
    labels = np.asarray(full.targets)
    rng = as_generator(seed)
    chosen, new_labels = [], []
    for new, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        if per_class is not None:
            if per_class > idx.size:
                raise ValueError(f"per_class={per_class} but class {c} has {idx.size} images")
            idx = np.sort(rng.choice(idx, size=per_class, replace=False))
        chosen.append(idx)
        new_labels.append(np.full(idx.size, new, np.int64))
    idx = np.concatenate(chosen)
    fill = tuple(-m / s for m, s in zip(config.mean, config.std))
    return ArrayDataset(model_inputs(full.data[idx], config), np.concatenate(new_labels),
                        transform=ShiftFlip(2, fill) if augment else None,
                        classes=[FASHION_MNIST_CLASSES[c] for c in classes])


def pretrain(classes: Sequence[int] = (0, 1, 2, 3, 4), epochs: int = 3,
             out: str | os.PathLike | None = "resnet_small_fmnist5.safetensors",
             seed: int = 0, root=None, per_class: int | None = None,
             batch_size: int = 128, lr: float = 0.05, weight_decay: float = 5e-4,
             layers: Sequence[int] = (1, 1, 1), num_workers: int = 2,
             verbose: bool = True):
    """Train resnet_small from scratch on Fashion-MNIST ``classes`` (all training images,
    or ``per_class`` of each) for ``epochs`` with SGD (momentum 0.9, ``lr`` on a one-cycle
    schedule, ``weight_decay``), evaluate on those classes' test images, and save to
    ``out`` (None: do not save). Returns (FineTuner, test Evaluation).

    The file holds FineTuner.save's metadata plus a "weitiao_pretrain" entry recording
    how it was made (classes, epochs, seed, test accuracy, seconds). Training stopped with
    Ctrl-C writes no file (the last history record is marked ``interrupted``).
    """
    from .finetune import FineTuner
    from .io import check_writable, save_state_dict

    classes = parse_classes(classes)
    if out is not None:
        check_writable(out)
    names = [FASHION_MNIST_CLASSES[c] for c in classes]
    config = fashion_mnist_config(
        names, source=f"Fashion-MNIST classes {','.join(str(c) for c in classes)}")
    train = fashion_mnist_split(classes, True, per_class, seed, root, config, augment=True)
    test = fashion_mnist_split(classes, False, None, seed, root, config)
    blank = resnet_small(num_classes=len(classes), rng=seed, layers=layers, config=config)
    tuner = FineTuner(blank, classes=names, from_scratch=True, lr=lr, head_lr_mult=1.0,
                      weight_decay=weight_decay, seed=seed)
    if verbose:
        print(f"pretraining resnet_small{tuple(layers)} from scratch on Fashion-MNIST "
              f"classes {', '.join(names)}: {len(train)} training images, {epochs} epoch(s), "
              f"batch {batch_size}, lr {lr:g} (one-cycle), seed {seed}")
    began = time.perf_counter()
    history = tuner.fit(train, epochs, batch_size=batch_size, scheduler="onecycle",
                        num_workers=num_workers, verbose=verbose)
    seconds = time.perf_counter() - began
    evaluation = tuner.evaluate(test, batch_size=256, num_workers=num_workers)
    if verbose:
        print(history)
        print(f"test accuracy on the {len(test)} test images of these classes: "
              f"{evaluation.accuracy:.4f} ({seconds:.0f} s training)")
    interrupted = bool(history.epochs) and history.epochs[-1].interrupted
    if interrupted and out is not None and verbose:
        print(f"pretraining was interrupted; {out} was not written")
    if out is not None and not interrupted:
        record = {"dataset": "fashion-mnist", "classes": classes, "epochs": epochs,
                  "seed": seed, "per_class": per_class, "batch_size": batch_size, "lr": lr,
                  "weight_decay": weight_decay, "layers": list(layers),
                  "train_images": len(train), "test_accuracy": evaluation.accuracy,
                  "seconds": seconds}
        save_state_dict(tuner.model.state_dict(), out,
                        metadata={"weitiao": json.dumps(tuner.metadata()),
                                  "weitiao_pretrain": json.dumps(record)})
        if verbose:
            print(f"saved {out}")
    return tuner, evaluation


def pretrain_record(path: str | os.PathLike) -> dict:
    """How a file written by :func:`pretrain` was made ({} for other files)."""
    from .io import load_safetensors

    _, meta = load_safetensors(path)
    return json.loads(meta.get("weitiao_pretrain", "{}"))
