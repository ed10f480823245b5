"""weitiao.dist under a real MPI: tests/dist/train.py launched with ``mpiexec -n N`` in a
subprocess (mpi4py and mpich are in the ``test`` extra, so CI runs these; skipped with a
reason where they are missing). Weights are compared bit for bit: the micro-batch group rule
makes them independent of the rank count (docs/distributed.md, "Determinism")."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import weitiao

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'weitiao[mpi]')")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec (pip install mpich)", allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "dist", "train.py")
TIMEOUT = 240  # seconds per launch on a loaded 2-core machine; a hang fails, never blocks


def run(n: int | None, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS`` (plain ``python ARGS`` for n None), one thread per rank,
    with this weitiao first on the path; an MPI launcher's variables are cleared for the
    plain run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "PMIX_", "MPI_LOCAL"))}
    package_root = os.path.dirname(os.path.dirname(weitiao.__file__))
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    cmd = ([MPIEXEC, "-n", str(n)] if n else []) + [sys.executable, *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT)


def train(tmp_path, name: str, n: int | None, *options: str) -> list[dict]:
    """Every rank's state dict after tests/dist/train.py, rank order."""
    out = str(tmp_path / name)
    proc = run(n, SCRIPT, out, *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [dict(np.load(f"{out}.rank{r}.npz")) for r in range(n or 1)]


def assert_same_bits(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{what}: {key}")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The one-process run without MPI, groups=4: the reference."""
    return train(tmp_path_factory.mktemp("plain"), "plain", None)[0]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_weights_are_the_same_bits_for_1_2_3_4_ranks_and_without_mpi(tmp_path, plain, n):
    from weitiao.models.small_resnet import SmallResNet

    before = SmallResNet(rng=1).state_dict()
    assert not np.array_equal(plain["layer1.0.conv1.weight"], before["layer1.0.conv1.weight"])
    ranks = train(tmp_path, f"n{n}", n)
    for r, state in enumerate(ranks):
        assert_same_bits(plain, state, f"{n} ranks, rank {r} vs no MPI")


def test_cached_features_of_a_frozen_backbone_are_sharded_and_give_the_same_bits(tmp_path):
    alone = train(tmp_path, "plain", None, "--freeze", "backbone")[0]
    for r, state in enumerate(train(tmp_path, "n2", 2, "--freeze", "backbone")):
        assert_same_bits(alone, state, f"cached features, rank {r} vs no MPI")


def test_allreduce_mode_matches_the_grouped_rule_with_one_group_per_rank(tmp_path):
    """exact=False: each rank's shard is one micro-batch and MPI sums; with 2 ranks that is
    the 2-group rule up to the summation order of the reduction."""
    grouped = train(tmp_path, "plain", None, "--groups", "2")[0]
    for state in train(tmp_path, "n2", 2, "--allreduce"):
        for key in grouped:
            # float32 sums in another order, compounded over 8 SGD steps
            np.testing.assert_allclose(state[key], grouped[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_synchronised_batchnorm_matches_one_process_over_the_whole_batch(tmp_path):
    # without dropout: the plain loop draws one mask for the batch, ranks draw their own
    # 30 samples: every batch has a sample for each of the 3 ranks
    options = ("--dropout", "0", "--samples", "30")
    alone = train(tmp_path, "plain", None, "--groups", "0", *options)[0]
    for state in train(tmp_path, "n3", 3, "--allreduce", "--sync-bn", *options):
        for key in alone:
            # float64 statistics in numpy against the C kernel's, and another summation
            # order, over 6 SGD steps
            np.testing.assert_allclose(state[key], alone[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_only_rank_0_writes_checkpoints_and_a_resume_with_other_ranks_is_exact(tmp_path,
                                                                                plain):
    ckpt = str(tmp_path / "run.safetensors")
    crashed = run(2, SCRIPT, str(tmp_path / "first"), "--checkpoint", ckpt,
                  "--crash-after-save")
    assert crashed.returncode != 0
    assert "simulated crash" in crashed.stderr
    assert (tmp_path / "first.saves").read_text() == "save 0\n"
    resumed = train(tmp_path, "resumed", 3, "--checkpoint", ckpt, "--resume")
    for r, state in enumerate(resumed):
        assert_same_bits(plain, state, f"resumed on 3 ranks after 1 epoch on 2, rank {r}")
    assert (tmp_path / "resumed.saves").read_text() == "save 0\n"


def test_a_rank_that_raises_ends_the_job_with_its_rank_named(tmp_path):
    proc = run(2, SCRIPT, str(tmp_path / "fail"), "--fail-rank", "1")
    assert proc.returncode != 0
    assert "weitiao.dist: rank 1 of 2 failed in fit: OSError: cannot read sample" \
        in proc.stderr
    assert not (tmp_path / "fail.rank0.npz").exists()


@pytest.mark.parametrize("mode", [(), ("--allreduce",)], ids=["exact", "allreduce"])
def test_ctrl_c_on_one_rank_mid_step_stops_every_rank_after_the_same_step(tmp_path, mode):
    """SIGINT reaches rank 1 alone, during its last forward of the second step (after the
    old code had written that step's stop vote): every rank still stops after that step,
    with the same weights, instead of rank 0 waiting for rank 1 in the next reduction."""
    ranks = train(tmp_path, "stop", 2, "--interrupt-rank", "1", *mode)
    for state in ranks:
        assert state["history.interrupted"].tolist() == [True]
    assert_same_bits(ranks[0], ranks[1], "rank 0 vs rank 1 after Ctrl-C")


def test_synchronised_batchnorm_refuses_a_batch_that_leaves_a_rank_without_samples(tmp_path):
    """32 samples in batches of 10 end with a batch of 2; over 3 ranks one has none, and
    synchronised BatchNorm needs every rank in every layer's reduction."""
    proc = run(3, SCRIPT, str(tmp_path / "short"), "--allreduce", "--sync-bn")
    assert proc.returncode != 0
    assert "fit: sync_bn: ranks [0] have no sample in a batch of 2" in proc.stderr
    assert "pass drop_last=True or use fewer ranks" in proc.stderr


def test_the_command_line_runs_unchanged_under_mpiexec(tmp_path):
    from PIL import Image

    from weitiao.finetune import FineTuner
    from weitiao.models import resnet_small

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(
                tmp_path / "data" / c / f"{i}.png")
    source = str(tmp_path / "source.safetensors")
    FineTuner(resnet_small(rng=1), classes=["x", "y", "z"]).save(source)
    out = tmp_path / "model.safetensors"
    proc = run(2, "-m", "weitiao", "finetune", "--model", "resnet_small", "--weights",
               source, "--data", str(tmp_path / "data"), "--epochs", "1", "--batch-size",
               "4", "--workers", "1", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("saved ") == 1 and proc.stdout.count("fine-tuning ") == 1
    assert FineTuner.load(out).classes == ["cat", "dog"]
