"""DataParallel: what ``FineTuner.fit`` does differently when a batch is spread over
ranks (or, with ``groups=``, over micro-batch groups in one process).

Each global batch of B samples splits into G groups (:mod:`weitiao.dist.groups`); rank r
loads and runs only its groups. Per group it runs forward and backward on its own (so
BatchNorm normalises with that group's statistics) and packs one float32 row: the
gradients of the group's *summed* loss, the BatchNorm running statistics that group's
update would give, and a few counts. The rows are summed in group order
(:func:`~weitiao.dist.reduce.ordered_sum`), and every rank divides by the batch's loss
denominator, sets the averaged running statistics and takes the same SGD step. Nothing in
a group's arithmetic depends on the rank count, so the weights are the same bits for any N.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from ..data import DataLoader
from ..finetune.checkpoint import generators
from ..finetune.batches import cached_steps
from ..finetune.guard import KEPT, diverged_error, non_finite_images
from ..nn.norm import BatchNorm2d
from .groups import StepPlan, owned_groups, plan_step
from .reduce import allgather_rows, allreduce_sum, ordered_sum
from .sync_bn import SyncBatchNorm

DEFAULT_GROUPS = 8
# The tail of each group's row: loss denominator, summed loss, correct predictions,
# samples, 1 if the group ran, 1 if its input holds NaN/Inf, 1 if Ctrl-C was pressed.
_TAIL = 7


@dataclass
class Shard:
    """This rank's part of one global batch: one (inputs, labels) per owned group, None
    for a group whose samples were all skipped as unreadable; ``plan`` says which groups
    they are and how many every rank holds."""

    groups: list
    plan: StepPlan


class _Skipped:
    """Stands for a group whose every sample was skipped (a loader drops None)."""


class _IndexLoader(DataLoader):
    """``loader``'s samples (its seed, transform and threads) in the given index batches,
    one batch per item; a batch whose samples were all skipped comes out as _Skipped."""

    def __init__(self, loader: DataLoader, index_batches: list[np.ndarray]):
        super().__init__(loader.dataset, batch_size=1, seed=loader.seed,
                         num_workers=loader.num_workers, transform=loader.transform,
                         prefetch_batches=loader.prefetch_batches)
        self._given = index_batches

    def _batches(self, epoch: int) -> list[np.ndarray]:
        return self._given

    @staticmethod
    def _collate(samples, indices):
        batch = DataLoader._collate(samples, indices)
        return _Skipped if batch is None else batch


def _jumped(state: dict, jumps: int) -> dict:
    """A bit generator state ``jumps`` jumps (2^127 draws each for PCG64) after ``state``."""
    if jumps == 0:
        return state
    import numpy.random as npr

    bit_gen = getattr(npr, state["bit_generator"])()
    bit_gen.state = state
    return bit_gen.jumped(jumps).state


class DataParallel:
    """Data-parallel training over ``comm`` (an mpi4py communicator; None: one process).

    ``exact=True`` (the default): each batch splits into ``groups`` micro-batch groups
    (default 8, independent of the rank count), BatchNorm statistics are per group, and
    group gradients are summed in group order: the weights after training are bit-identical
    for any number of ranks, and to ``fit(groups=G)`` in one process without MPI.
    ``exact=False``: each rank's shard is one micro-batch (BatchNorm per rank, as
    PyTorch's DistributedDataParallel), gradients are summed by ``Allreduce``: less
    arithmetic and one message of the gradient size, but the last bits depend on the rank
    count. ``sync_bn=True`` (with ``exact=False``) normalises with the statistics of the
    whole global batch (:class:`~weitiao.dist.sync_bn.SyncBatchNorm`), as one process does,
    at two small all-reduces per BatchNorm layer and step.

    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> ft.fit(train, comm=DataParallel(MPI.COMM_WORLD, exact=False))  # doctest: +SKIP
    """

    def __init__(self, comm=None, groups: int | None = None, exact: bool = True,
                 sync_bn: bool = False):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.exact = bool(exact)
        self.sync_bn = bool(sync_bn)
        if self.sync_bn and self.exact:
            raise ValueError("DataParallel: sync_bn=True needs exact=False (synchronised "
                             "statistics are over each rank's whole share of the batch)")
        if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int)
                                   or groups < 1):
            raise ValueError(f"DataParallel: groups must be an int >= 1, got {groups!r}")
        if not self.exact:
            if groups is not None:
                raise ValueError("DataParallel: groups applies to exact=True only; with "
                                 "exact=False each rank's shard is one micro-batch")
            groups = self.size
        self.groups = groups if groups is not None else DEFAULT_GROUPS
        if self.groups < self.size:
            raise ValueError(f"DataParallel: {self.size} ranks but groups={self.groups} "
                             f"micro-batch groups per batch, so some ranks would idle; pass "
                             f"groups >= {self.size} (fit(groups=...), --groups), or "
                             f"exact=False")

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that writes checkpoints, logs and bars."""
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"DataParallel(rank={self.rank}, size={self.size}, groups={self.groups}, "
                f"exact={self.exact}, sync_bn={self.sync_bn})")

    def check_same(self, value, what: str) -> None:
        """Raise the same ValueError on every rank unless every rank passes an equal
        ``value`` (what ``what`` names)."""
        values = self.comm.allgather(value) if self.comm is not None else [value]
        if any(v != values[0] for v in values):
            raise ValueError(f"fit: the ranks disagree on the {what}: {values} by rank")

    # ------------------------------------------------------------------ batches
    def _plans(self, order: np.ndarray, batch_size: int, steps: int):
        for s in range(0, min(steps * batch_size, len(order)), batch_size):
            idx = order[s:s + batch_size]
            yield idx, plan_step(len(idx), self.groups, self.size, self.rank)

    def loader_batches(self, loader: DataLoader, epoch: int):
        """Shards of epoch ``epoch``'s batches of ``loader``: the same global batches as
        ``iter(loader)``, this rank loading only its groups' samples."""
        plans = list(self._plans(loader.order(epoch), loader.batch_size, len(loader)))
        shard_loader = _IndexLoader(loader, [idx[a:b] for idx, plan in plans
                                             for _, a, b in plan.mine])
        shard_loader.set_epoch(epoch)
        items = iter(shard_loader)
        for _, plan in plans:
            groups = [next(items) for _ in plan.mine]
            yield Shard([None if g is _Skipped else g for g in groups], plan), None

    def array_batches(self, features: np.ndarray, labels: np.ndarray, order: np.ndarray,
                      batch_size: int, drop_last: bool):
        """Shards of cached features (N, D) in ``order``, as ``batches.array_batches``."""
        for idx, plan in self._plans(order, batch_size,
                                     cached_steps(len(order), batch_size, drop_last)):
            groups = [(np.ascontiguousarray(features[idx[a:b]]), labels[idx[a:b]])
                      for _, a, b in plan.mine]
            yield Shard(groups, plan), None

    def compute_features(self, model, train_loader: DataLoader, augment_pass: int,
                         verbose: bool) -> tuple[np.ndarray, np.ndarray]:
        """``batches.compute_features`` sharded: the dataset-order batches are split into
        contiguous runs, one per rank, and the features gathered on every rank. The batches
        are the one-process ones, and random layers below the head (dropout, drop-connect)
        draw batch b from their generator jumped b times, so the features are the same bits
        for any rank count."""
        from tqdm.auto import tqdm

        n, size = len(train_loader.dataset), train_loader.batch_size
        first, mine = self._my_batches(n, size)
        loader = _IndexLoader(train_loader, mine)
        loader.set_epoch(augment_pass)
        gens = generators(model)
        start = [g.bit_generator.state for g in gens]
        feats, labels, missing = [], [], 0
        for b, (idx, item) in enumerate(zip(mine, tqdm(
                loader, total=len(mine), unit="batch", leave=False,
                desc=f"caching features (pass {augment_pass + 1})", disable=not verbose))):
            if item is _Skipped:
                missing += len(idx)
                continue
            for gen, state in zip(gens, start):  # dropout below the head: batch b's draws
                gen.bit_generator.state = _jumped(state, first + b)
            feats.append(model.forward_features(item[0]))
            labels.append(item[1])
            missing += len(idx) - len(item[1])
        for gen, state in zip(gens, start):
            gen.bit_generator.state = _jumped(state, -(-n // size))
        if self.comm is not None:
            missing = sum(self.comm.allgather(missing))
        if missing:
            raise ValueError(f"feature caching needs every sample: {missing} were skipped as "
                             f"unreadable; fix or remove those files, or pass "
                             f"cache_features=False")
        local = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
        local_labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        return (allgather_rows(self.comm, local), allgather_rows(self.comm, local_labels))

    def _my_batches(self, n: int, batch_size: int) -> tuple[int, list[np.ndarray]]:
        """The dataset-order batches of ``n`` samples this rank takes: a contiguous run
        (index of its first, the batches), floor(r b / N) to floor((r + 1) b / N) of b."""
        ordered = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        run = owned_groups(len(ordered), self.size, self.rank)
        return run.start, ordered[run.start:run.stop]

    def eval_batches(self, loader: DataLoader):
        """This rank's batches of an unshuffled evaluation ``loader`` (the one-process
        batches, so each gives the same bits), for :meth:`gather_rows`, and the dataset
        position of the first of them (what error messages number images from)."""
        first, mine = self._my_batches(len(loader.dataset), loader.batch_size)
        kept = (item for item in _IndexLoader(loader, mine) if item is not _Skipped)
        return kept, first * loader.batch_size

    def gather_rows(self, rows: np.ndarray) -> np.ndarray:
        """Every rank's ``rows`` in rank order, on every rank (see ``allgather_rows``)."""
        return allgather_rows(self.comm, rows)

    # ------------------------------------------------------------------ one step
    def step(self, tuner, shard: Shard, forward, backward, guard, stop) -> tuple[float, int,
                                                                                   int, bool]:
        """One SGD step of ``tuner`` on the global batch ``shard`` is this rank's part of;
        returns the batch's loss, correct predictions, samples and whether any rank's
        ``stop`` was requested (all four the same on every rank, so every rank leaves the
        loop after the same step). ``stop.requested`` is read just before the reduction; a
        Ctrl-C that comes later, or on a rank with no group in this batch, is counted at
        the next step. A non-finite loss leaves the model as before the batch and raises on
        every rank."""
        params = [p for g in tuner.optimizer.param_groups for p in g["params"]
                  if p.requires_grad]
        norms = [m for m in tuner.model.modules() if isinstance(m, BatchNorm2d)
                 and m.track_running_stats and m.uses_batch_stats()]
        stats = [b for m in norms for b in (m.running_mean, m.running_var)]
        n_grad = sum(p.size for p in params)
        n_stats = sum(b.size for b in stats)
        rows = np.zeros((len(shard.groups), n_grad + n_stats + _TAIL), np.float32)
        if self.sync_bn:
            self._check_every_rank_has_samples(shard)
        gens = generators(tuner.model)
        guard.save()
        start = [g.bit_generator.state for g in gens]
        tracked = [int(m.num_batches_tracked) for m in norms]
        for row, (group, _, _), batch in zip(rows, shard.plan.mine, shard.groups):
            if batch is None:
                continue
            guard.restore()
            for gen, state in zip(gens, start):
                gen.bit_generator.state = _jumped(state, group)
            with SyncBatchNorm(self.comm, tuner.model) if self.sync_bn else nullcontext():
                self._group_row(tuner, row, batch, forward, backward, params, stats, n_grad)
        for gen, state in zip(gens, start):
            gen.bit_generator.state = _jumped(state, self.groups)
        rows[:1, -1] = stop.requested
        if self.exact:
            total = ordered_sum(self.comm, rows, shard.plan.counts)
        else:
            total = allreduce_sum(self.comm, rows)
        denominator, loss_sum, correct, seen, ran, bad, stops = (float(v) for v in total[-_TAIL:])
        if ran == 0:  # every sample skipped as unreadable: no step, as the plain loop drops it
            return 0.0, 0, 0, stops > 0
        if not np.isfinite(loss_sum):
            guard.restore()
            if bad > 0:
                raise _non_finite_input(shard)
            raise diverged_error(loss_sum / denominator, tuner.optimizer.param_groups)
        grads = total[:n_grad] / np.float32(denominator)
        for p, part in zip(params, _split(grads, params)):
            p.grad = part.reshape(p.shape)
        averaged = total[n_grad:n_grad + n_stats] / np.float32(ran)
        for b, part in zip(stats, _split(averaged, stats)):
            b[...] = part
        for m, count in zip(norms, tracked):
            m.num_batches_tracked[...] = count + 1
        tuner.optimizer.step()
        return loss_sum / denominator, int(round(correct)), int(round(seen)), stops > 0

    def _check_every_rank_has_samples(self, shard: Shard) -> None:
        """Synchronised BatchNorm needs every rank in every layer's all-reduce: raise the
        same error on every rank when one has no sample in this batch."""
        empty = [r for r, k in enumerate(shard.plan.counts) if k == 0]
        if not empty and self.comm is not None:
            mine = int(all(batch is None for batch in shard.groups))
            empty = [r for r, e in enumerate(self.comm.allgather(mine)) if e]
        if empty:
            raise ValueError(f"fit: sync_bn: ranks {empty} have no sample in a batch of "
                             f"{shard.plan.n} (a short last batch, or every sample skipped "
                             f"as unreadable); pass drop_last=True or use fewer ranks")

    @staticmethod
    def _group_row(tuner, row, batch, forward, backward, params, stats, n_grad) -> None:
        x, labels = batch
        targets = labels if tuner.soft_targets is None else tuner.soft_targets[labels]
        logits = forward(x)
        loss = tuner.loss_fn(logits, targets)
        weight = tuner.loss_fn.weight
        denominator = float(np.sum(weight[labels], dtype=np.float64)) \
            if weight is not None and np.ndim(targets) == 1 else float(len(labels))
        row[-_TAIL:-1] = (denominator, loss * denominator,
                      int((logits.argmax(axis=1) == labels).sum()), len(labels), 1,
                      0 if np.isfinite(loss) else not np.isfinite(x).all())
        tuner.optimizer.zero_grad()  # backward even at a NaN loss: every rank runs it
        backward(tuner.loss_fn.backward() * np.float32(denominator))
        for p, part in zip(params, _split(row[:n_grad], params)):
            if p.grad is not None:
                part[...] = p.grad.reshape(-1)
        for b, part in zip(stats, _split(row[n_grad:], stats)):
            part[...] = b


def _non_finite_input(shard: Shard) -> ValueError:
    """The error for a batch with NaN or Inf in its input, naming the positions this rank
    holds (another rank's message names the others)."""
    bad = [a + i for (_, a, _), batch in zip(shard.plan.mine, shard.groups)
           if batch is not None for i in non_finite_images(batch[0])]
    where = f"images {bad} of this batch (of {shard.plan.n})" if bad else \
        f"images of this batch (of {shard.plan.n}) on another rank"
    return ValueError(f"fit: non-finite input: {where} hold NaN or Inf, so the loss is not "
                      f"finite; {KEPT}; check those files or the transform")


def _split(flat: np.ndarray, arrays: list) -> list[np.ndarray]:
    """Consecutive views of ``flat`` sized like ``arrays``, from its start."""
    cuts = np.cumsum([0] + [a.size for a in arrays])
    return [flat[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def data_parallel(comm=None, groups: int | None = None) -> DataParallel | None:
    """What ``fit(comm=..., groups=...)`` trains with: ``comm`` as given (a DataParallel,
    or an mpi4py communicator for the exact mode), else ``MPI.COMM_WORLD`` when an MPI
    launcher started the process and mpi4py is installed, else one process in ``groups``
    groups if given, else None (the plain one-process loop)."""
    from .launch import launched_world

    if isinstance(comm, DataParallel):
        if groups is not None:
            raise ValueError("fit: give groups to DataParallel(...) or to fit, not both")
        return comm
    if comm is None:
        comm = launched_world()
        if comm is None:
            return None if groups is None else DataParallel(None, groups)
    if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "Alltoallv")):
        raise TypeError(f"fit: comm must be an mpi4py communicator (MPI.COMM_WORLD) or a "
                        f"weitiao.dist.DataParallel, got {type(comm).__name__}")
    return DataParallel(comm, groups)
