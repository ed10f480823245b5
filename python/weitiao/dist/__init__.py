"""weitiao.dist: data-parallel fine-tuning over MPI (the optional ``mpi4py`` extra,
``pip install "weitiao[mpi]"``), used by ``FineTuner.fit``.

Under ``mpiexec -n N python ...`` fit finds ``MPI.COMM_WORLD`` by itself; mpi4py is imported
only when an MPI launcher's environment variables say the process was started by one.
See docs/distributed.md.
"""
from .groups import group_bounds, owned_groups, plan_step
from .launch import abort_job_on_error, env_rank, launched_under_mpi, launched_world
from .parallel import DEFAULT_GROUPS, DataParallel, data_parallel

__all__ = ["DEFAULT_GROUPS", "DataParallel", "abort_job_on_error", "data_parallel",
           "env_rank", "group_bounds", "launched_under_mpi", "launched_world", "owned_groups",
           "plan_step"]
