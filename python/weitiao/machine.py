"""What the machine is, for reports that name the CPU next to a time or a ratio."""
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere).

    >>> cpu_model()  # doctest: +SKIP
    'AMD EPYC'
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def kernel_isa() -> str:
    """The instruction set of the kernel versions chosen for this CPU when ``weitiao._C``
    loaded: the C loops are compiled for AVX-512, AVX2 + FMA and baseline x86-64, so one
    build (one wheel) runs everywhere and takes the widest path the CPU has.

    >>> kernel_isa()  # doctest: +SKIP
    'x86-64-v3 (AVX2, FMA)'
    """
    from . import _C

    return _C.vector_isa()


def blas_core() -> str:
    """The kernel family OpenBLAS picked for this CPU (its DYNAMIC_ARCH choice, which
    ``OPENBLAS_CORETYPE`` overrides).

    >>> blas_core()  # doctest: +SKIP
    'Zen'
    """
    from . import _C

    return _C.blas_info()["corename"]
