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
