"""Thread count of the C kernels and of the BLAS they call."""
import os

from . import _C


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the kernels (OpenMP) and in sgemm (OpenBLAS).

    Both pools get the same count and never run at the same time, so the cores are not
    oversubscribed. The default is the number of cores this process may run on.

    >>> set_num_threads(1)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    """The thread count the kernels use."""
    return _C.get_num_threads()


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


set_num_threads(_default_threads())
