"""Finding out whether an MPI launcher started this process, from the environment variables
launchers set, so that mpi4py is imported only then; and ending the whole job when one rank
fails instead of leaving the others waiting in a collective.

>>> launched_under_mpi({"PMI_RANK": "1", "PMI_SIZE": "2"}), launched_under_mpi({})
(True, False)
>>> env_rank({"OMPI_COMM_WORLD_RANK": "3"})
3
"""
from __future__ import annotations

import functools
import os
import sys
import traceback

from .._threads import _default_threads, set_num_threads

# (rank, size, ranks on this node) as MPICH/Intel MPI (PMI), Open MPI, MVAPICH and PMIx
# (srun --mpi=pmix, whose size is Slurm's step size) set them; None where a launcher has no
# such variable.
_LAUNCHERS = (
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE"),
    ("PMIX_RANK", "SLURM_STEP_NUM_TASKS", None),
)
_threads_set = False


def _launcher(env) -> tuple[str, str | None, str | None] | None:
    return next((names for names in _LAUNCHERS if names[0] in env), None)


def launched_under_mpi(env=None) -> bool:
    """Whether an MPI launcher (mpiexec, mpirun, srun --mpi=...) started this process."""
    return _launcher(os.environ if env is None else env) is not None


def env_rank(env=None) -> int:
    """This process's rank as the launcher's environment says (0 when not launched), read
    without importing mpi4py: what the command line uses to print and save on rank 0 only."""
    env = os.environ if env is None else env
    names = _launcher(env)
    return int(env[names[0]]) if names else 0


def _env_int(env, name: str | None) -> int | None:
    try:
        return int(env[name]) if name else None
    except (KeyError, ValueError):
        return None


def rank_threads(local_ranks: int) -> int:
    """Threads for one of ``local_ranks`` ranks on this machine: the cores this process may
    run on, divided by ``local_ranks`` unless the launcher already bound it to fewer cores
    than the machine has (then each rank has its own)."""
    cores = _default_threads()
    if cores >= (os.cpu_count() or cores):
        cores //= max(local_ranks, 1)
    return max(cores, 1)


def launched_world():
    """``MPI.COMM_WORLD`` when an MPI launcher started this process and mpi4py is
    installed; None when no launcher did. Under a launcher of more than one rank without
    mpi4py, an ImportError says what to install (each rank would otherwise train alone).
    The first call also sets the kernels' threads per rank: ``OMP_NUM_THREADS`` if set,
    else :func:`rank_threads`."""
    global _threads_set
    names = _launcher(os.environ)
    if names is None:
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        size = _env_int(os.environ, names[1])
        if size is not None and size == 1:
            return None
        raise ImportError(f"weitiao: this process was started by an MPI launcher "
                          f"({names[0]}={os.environ[names[0]]}"
                          f"{f', {names[1]}={size}' if size is not None else ''}) but mpi4py "
                          f"is not installed, so every rank would train alone; "
                          f"pip install 'weitiao[mpi]', or run without mpiexec") from None
    if not _threads_set:
        set_num_threads(max(1, _env_int(os.environ, "OMP_NUM_THREADS")
                            or rank_threads(_env_int(os.environ, names[2]) or 1)))
        _threads_set = True
    return MPI.COMM_WORLD


def abort_job_on_error(fit):
    """Decorate ``FineTuner.fit``: when it raises on one rank of a multi-rank run, print
    the traceback and "rank r of N failed" on stderr and end every rank with
    ``MPI_Abort`` (exit status 1), because the other ranks would wait in their next
    collective forever. One-process runs raise as usual."""
    @functools.wraps(fit)
    def run(tuner, *args, **kwargs):
        try:
            return fit(tuner, *args, **kwargs)
        except BaseException as e:
            parallel = getattr(tuner, "_parallel", None)
            if parallel is None or parallel.size == 1:
                raise
            traceback.print_exc()
            print(f"weitiao.dist: rank {parallel.rank} of {parallel.size} failed in fit: "
                  f"{type(e).__name__}: {e}; aborting all {parallel.size} ranks",
                  file=sys.stderr, flush=True)
            parallel.comm.Abort(1)
            raise
        finally:
            tuner._parallel = None
    return run
