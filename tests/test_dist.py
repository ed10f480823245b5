"""weitiao.dist without MPI: the micro-batch group rule, the ordered sums, the launcher
detection and its errors, and fit(groups=G) in one process against the plain loop (equal up
to float32 rounding where BatchNorm uses running statistics, so grouping cannot change the
maths). The runs under mpiexec are in test_dist_mpi.py."""
import sys

import numpy as np
import pytest

from weitiao.data import ArrayDataset, DataLoader
from weitiao.data.image_files import SkippedSample
from weitiao.dist import (DataParallel, data_parallel, env_rank, group_bounds,
                          launched_under_mpi, launched_world, owned_groups, plan_step)
from weitiao.dist.reduce import ordered_sum, sum_rows
from weitiao.finetune import FineTuner
from weitiao.models import resnet_small

CLASSES = ["a", "b", "c"]


class FakeComm:
    """Enough of an mpi4py communicator for DataParallel's checks."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Alltoallv(self, *args):
        raise AssertionError("not reached")


@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 10, 33])
@pytest.mark.parametrize("groups", [1, 3, 8])
def test_groups_cover_the_batch_in_order_with_sizes_one_apart(n, groups):
    bounds = group_bounds(n, groups)
    assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("groups,size", [(8, 1), (8, 2), (8, 3), (5, 5), (12, 4)])
def test_ranks_own_contiguous_runs_of_groups_in_rank_order(groups, size):
    owned = [list(owned_groups(groups, size, r)) for r in range(size)]
    assert sum(owned, []) == list(range(groups))
    assert max(map(len, owned)) - min(map(len, owned)) <= 1


def test_a_step_plan_skips_empty_groups_and_every_rank_knows_every_count():
    plans = [plan_step(3, 4, 2, r) for r in range(2)]
    assert plans[0].counts == plans[1].counts == [1, 2]
    assert plans[0].mine == [(1, 0, 1)]
    assert plans[1].mine == [(2, 1, 2), (3, 2, 3)]


def test_rows_are_summed_one_float32_addition_at_a_time_in_row_order():
    rows = np.array([[1e8, 1.0], [1.0, 1e8], [-1e8, -1e8]], np.float32)
    expected = [(np.float32(1e8) + np.float32(1.0)) - np.float32(1e8),
                (np.float32(1.0) + np.float32(1e8)) - np.float32(1e8)]
    np.testing.assert_array_equal(sum_rows(rows), np.array(expected, np.float32))
    np.testing.assert_array_equal(ordered_sum(None, rows, [3]), sum_rows(rows))
    np.testing.assert_array_equal(sum_rows(np.zeros((0, 2), np.float32)), [0, 0])


def test_data_parallel_options_are_checked():
    with pytest.raises(ValueError, match="groups must be an int >= 1, got 0"):
        DataParallel(groups=0)
    with pytest.raises(ValueError, match="groups must be an int >= 1, got True"):
        DataParallel(groups=True)
    with pytest.raises(ValueError, match="sync_bn=True needs exact=False"):
        DataParallel(sync_bn=True)
    with pytest.raises(ValueError, match="groups applies to exact=True only"):
        DataParallel(FakeComm(0, 2), groups=4, exact=False)
    with pytest.raises(ValueError, match="3 ranks but groups=2 .* pass groups >= 3"):
        DataParallel(FakeComm(0, 3), groups=2)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator .* got str"):
        data_parallel("COMM_WORLD")
    with pytest.raises(ValueError, match="not both"):
        data_parallel(DataParallel(groups=2), groups=2)
    assert DataParallel(FakeComm(0, 3), exact=False).groups == 3
    assert DataParallel(FakeComm(1, 2)).groups == 8 and not DataParallel(FakeComm(1, 2)).is_main


def test_launchers_are_recognised_by_their_environment_variables():
    assert launched_under_mpi({"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert launched_under_mpi({"OMPI_COMM_WORLD_RANK": "1"})
    assert launched_under_mpi({"PMIX_RANK": "0"})
    assert not launched_under_mpi({"SLURM_PROCID": "0"})
    assert env_rank({"PMI_RANK": "2"}) == 2 and env_rank({}) == 0


def test_threads_per_rank_share_the_cores_unless_the_launcher_bound_them(monkeypatch):
    from weitiao.dist import launch

    monkeypatch.setattr(launch.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(launch, "_default_threads", lambda: 8)
    assert launch.rank_threads(4) == 2 and launch.rank_threads(16) == 1
    monkeypatch.setattr(launch, "_default_threads", lambda: 2)  # bound to 2 of 8 cores
    assert launch.rank_threads(4) == 2


def test_no_launcher_means_no_mpi4py_import(monkeypatch):
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # an import would raise
    assert launched_world() is None
    assert data_parallel() is None
    assert data_parallel(groups=3).groups == 3


def test_a_launcher_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(ImportError, match=r"PMI_SIZE=2\) but mpi4py is not installed.*"
                                          r"weitiao\[mpi\]"):
        launched_world()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert launched_world() is None


def test_srun_with_one_task_needs_no_mpi4py(monkeypatch):
    """srun --mpi=pmix sets PMIX_RANK and Slurm's step size: one task trains alone."""
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PMIX_RANK", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert launched_world() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    with pytest.raises(ImportError, match=r"PMIX_RANK=0, SLURM_STEP_NUM_TASKS=4\) but mpi4py"):
        launched_world()
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS")
    with pytest.raises(ImportError, match=r"\(PMIX_RANK=0\) but mpi4py"):
        launched_world()


def tiny_data(n=12, nan_at=None):
    rng = np.random.default_rng(0)
    images = rng.random((n, 3, 28, 28), dtype=np.float32)
    if nan_at is not None:
        images[nan_at, 0, 0, 0] = np.nan
    return ArrayDataset(images, np.arange(n) % 3, classes=CLASSES)


def fitted(groups, **options):
    tuner = FineTuner(resnet_small(rng=1), classes=CLASSES, seed=2, class_weight="balanced",
                      augment="none", **options)
    tuner.fit(tiny_data(), 1, batch_size=5, groups=groups, num_workers=0, verbose=False)
    return tuner


@pytest.mark.parametrize("options", [{"freeze": None, "train_bn": False},
                                     {"freeze": "backbone"}])
def test_grouped_gradients_are_the_batch_gradients_where_batchnorm_uses_running_stats(
        options):
    plain, grouped = fitted(None, **options), fitted(3, **options)
    for key, value in plain.model.state_dict().items():
        # group sums then one division instead of one mean: float32 rounding only
        np.testing.assert_allclose(grouped.model.state_dict()[key], value, rtol=1e-4,
                                   atol=1e-6, err_msg=key)
    assert grouped.history.epochs[0].loss == pytest.approx(plain.history.epochs[0].loss,
                                                           rel=1e-5)


def test_synchronised_batchnorm_in_one_process_is_the_plain_batchnorm():
    plain = fitted(None, freeze=None)
    synced = FineTuner(resnet_small(rng=1), classes=CLASSES, seed=2, class_weight="balanced",
                       augment="none", freeze=None)
    synced.fit(tiny_data(), 1, batch_size=5, num_workers=0, verbose=False,
               comm=DataParallel(exact=False, sync_bn=True))
    for key, value in plain.model.state_dict().items():
        # float64 statistics in numpy against the C kernel's: rounding only
        np.testing.assert_allclose(synced.model.state_dict()[key], value, rtol=1e-4,
                                   atol=1e-5, err_msg=key)


def test_grouped_training_keeps_the_model_on_non_finite_input():
    tuner = FineTuner(resnet_small(rng=1), classes=CLASSES, freeze=None, augment="none")
    before = {k: v.copy() for k, v in tuner.model.state_dict().items()}
    with pytest.raises(ValueError,
                       match=r"non-finite input: images \[3\] of this batch \(of 6\)"):
        tuner.fit(tiny_data(nan_at=3), 1, batch_size=6, shuffle=False, groups=3,
                  num_workers=0, verbose=False)
    for key, value in tuner.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_a_ranks_evaluation_batches_say_where_in_the_dataset_they_start():
    """So that a NaN image found on rank 1 is named by its dataset position, not by its
    place among rank 1's images."""
    loader = DataLoader(tiny_data(), batch_size=5, shuffle=False)  # 12 samples, 3 batches
    mine, first = DataParallel(comm=FakeComm(1, 2)).eval_batches(loader)
    assert first == 5  # rank 1 of 2 takes batches 1 and 2
    assert [len(y) for _, y in mine] == [5, 2]


class FirstSamplesUnreadable(ArrayDataset):
    """tiny_data whose first ``lost`` samples fail to decode, as a skipping ImageFolder's."""

    lost = 6

    def __getitem__(self, index, rng=None):
        if index < self.lost:
            raise SkippedSample(f"image{index}.png", "truncated")
        return super().__getitem__(index, rng)


def test_a_batch_whose_samples_were_all_skipped_is_left_out_as_in_the_plain_loop():
    data = tiny_data()
    runs = []
    for groups in (None, 3):
        tuner = FineTuner(resnet_small(rng=1), classes=CLASSES, seed=2, freeze=None,
                          train_bn=False, augment="none")
        tuner.fit(FirstSamplesUnreadable(data.images, data.targets, classes=CLASSES), 1,
                  batch_size=6, shuffle=False, groups=groups, num_workers=0, verbose=False)
        runs.append(tuner)
    plain, grouped = runs
    assert np.isfinite(grouped.history.epochs[0].loss)
    for key, value in plain.model.state_dict().items():
        np.testing.assert_allclose(grouped.model.state_dict()[key], value, rtol=1e-4,
                                   atol=1e-6, err_msg=key)


class DisagreeingComm(FakeComm):
    """Rank 0 of 2 whose peer reports another value in every allgather."""

    def allgather(self, value):
        return [value, value + 1]


def test_ranks_that_disagree_on_a_resumed_checkpoint_are_told_so():
    with pytest.raises(ValueError, match=r"^fit: the ranks disagree on the epochs found in "
                                         r"the checkpoint: \[3, 4\] by rank$"):
        DataParallel(comm=DisagreeingComm(0, 2)).check_same(3, "epochs found in the "
                                                                "checkpoint")


def test_sharded_feature_caching_refuses_skipped_samples():
    """A frozen backbone's features are cached once; a skipped image would leave a hole, so
    grouped caching refuses as the plain one does."""
    data = tiny_data()
    tuner = FineTuner(resnet_small(rng=1), classes=CLASSES, freeze="backbone", augment="none")
    with pytest.raises(ValueError, match=r"feature caching needs every sample: 6 were "
                                         r"skipped as unreadable; .*cache_features=False"):
        tuner.fit(FirstSamplesUnreadable(data.images, data.targets, classes=CLASSES), 1,
                  batch_size=6, shuffle=False, groups=3, num_workers=0, verbose=False)


def test_synchronised_batchnorm_needs_two_values_per_channel():
    from weitiao.dist.sync_bn import SyncBatchNorm
    from weitiao.nn import BatchNorm2d

    bn = BatchNorm2d(2)
    with SyncBatchNorm(None, bn), pytest.raises(
            ValueError, match=r"BatchNorm2d\(2\) with synchronised statistics: expected more "
                              r"than 1 value per channel over all ranks, got 1"):
        bn(np.ones((1, 2, 1, 1), np.float32))


@pytest.mark.parametrize("name", ["groups", "reduce", "launch", "sync_bn"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"weitiao.dist.{name}"))
    assert result.attempted and not result.failed
