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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weitiao",
                                     description="Fine-tune pretrained CNNs on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demonstration")
    demo.add_argument("--steps", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)
