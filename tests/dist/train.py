"""Fine-tune a tiny resnet_small (with dropout) on random 28x28 images; write every rank's
weights.

Run under ``mpiexec -n N`` or alone (one process without MPI); tests/test_dist_mpi.py launches it.

    python tests/dist/train.py OUT_PREFIX [--epochs E] [--groups G (0: the plain loop)]
        [--freeze backbone] [--checkpoint PATH [--resume] [--crash-after-save]]
        [--fail-rank R] [--interrupt-rank R] [--allreduce [--sync-bn]] [--dropout P]
        [--samples N]

writes OUT_PREFIX.rank<r>.npz (the model's state dict after fit and the history's training
loss, validation loss and accuracy per epoch ("history.loss", ...), on every rank) and appends
"save <rank>" to OUT_PREFIX.saves for each checkpoint a rank writes.
"""
import argparse
import os
import signal

import numpy as np

from weitiao.data import ArrayDataset
from weitiao.dist import DataParallel, env_rank, launched_world
from weitiao.finetune import FineTuner
from weitiao.finetune import checkpoint as training_checkpoint
from weitiao.models.small_resnet import SmallResNet
from weitiao.nn import Dropout

CLASSES = ["a", "b", "c"]


class DropoutResNet(SmallResNet):
    """resnet_small with dropout before fc: a random generator that every group must draw
    from the same way whatever the rank count."""

    chain = SmallResNet.chain[:-1] + ("drop", "fc")

    def __init__(self, p: float):
        super().__init__(rng=1)
        self.drop = Dropout(p, rng=0)


class InterruptedResNet(DropoutResNet):
    """DropoutResNet that sends SIGINT (Ctrl-C) to its own process in its fourth training
    forward on rank ``rank``: in the middle of a step, on one rank only."""

    def __init__(self, p: float, rank: int):
        super().__init__(p)
        self.rank, self.calls = rank, 0

    def forward(self, x):
        self.calls += self.training
        if env_rank() == self.rank and self.calls == 4 and self.training:
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x)


class FailingImages(ArrayDataset):
    """ArrayDataset whose fifth read on rank ``fail_rank`` raises."""

    def __init__(self, images, labels, fail_rank: int):
        super().__init__(images, labels, classes=CLASSES)
        self.fail_rank, self.reads = fail_rank, 0

    def __getitem__(self, index, rng=None):
        self.reads += 1
        if env_rank() == self.fail_rank and self.reads == 5:
            raise OSError(f"cannot read sample {index} (injected failure on rank "
                          f"{self.fail_rank})")
        return super().__getitem__(index, rng)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--freeze", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--fail-rank", type=int, default=None)
    parser.add_argument("--crash-after-save", action="store_true")
    parser.add_argument("--interrupt-rank", type=int, default=None)
    parser.add_argument("--allreduce", action="store_true")
    parser.add_argument("--sync-bn", action="store_true", help="with --allreduce")
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--samples", type=int, default=32,
                        help="32: the last batch of 2 leaves a rank without a group at N=3")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.samples, 28, 28), dtype=np.uint8)
    labels = np.arange(args.samples) % 3
    train = ArrayDataset(images, labels, classes=CLASSES) if args.fail_rank is None else \
        FailingImages(images, labels, args.fail_rank)

    save = training_checkpoint.save

    def logged_save(tuner, path, scheduler=None):
        with open(args.out + ".saves", "a") as f:
            f.write(f"save {env_rank()}\n")
        save(tuner, path, scheduler)
        if args.crash_after_save:
            raise RuntimeError("simulated crash right after the first checkpoint")

    training_checkpoint.save = logged_save
    model = DropoutResNet(args.dropout) if args.interrupt_rank is None else \
        InterruptedResNet(args.dropout, args.interrupt_rank)
    tuner = FineTuner(model, classes=CLASSES, seed=3,
                      freeze=args.freeze or None, augment="light", class_weight="balanced")
    comm = DataParallel(launched_world(), exact=False, sync_bn=args.sync_bn) \
        if args.allreduce else None
    val = ArrayDataset(rng.integers(0, 256, (13, 28, 28), dtype=np.uint8), np.arange(13) % 3,
                       classes=CLASSES)
    tuner.fit(train, args.epochs, val=val, batch_size=10, num_workers=1, comm=comm,
              groups=None if args.allreduce or args.groups == 0 else args.groups,
              checkpoint=args.checkpoint, resume=args.resume, verbose=False)
    state = dict(tuner.model.state_dict())
    epochs = tuner.history.epochs
    state["history.loss"] = np.array([e.loss for e in epochs])
    for key in ("val_loss", "val_accuracy"):  # NaN for an interrupted epoch (not validated)
        state[f"history.{key}"] = np.array([np.nan if getattr(e, key) is None
                                            else getattr(e, key) for e in epochs])
    state["history.interrupted"] = np.array([e.interrupted for e in epochs])
    np.savez(f"{args.out}.rank{env_rank()}.npz", **state)
    print(f"rank {env_rank()} done, {len(tuner.history)} epochs, pid {os.getpid()}")


if __name__ == "__main__":
    main()
