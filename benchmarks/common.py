"""Helpers shared by the benchmarks: thread setup, timing, machine info, markdown output.

Run benchmarks from the repository root with the in-place build on the path:

    PYTHONPATH=python python benchmarks/kernels.py

Every benchmark times weitiao against PyTorch in the same process, at the same thread
count, interleaved, and reports the ratio; absolute numbers are only read next to the
machine header that `machine_info` produces.
"""
from __future__ import annotations

import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Read once, before torch and weitiao load, so the header shows what the process started
# with. The benchmarks only record these; they never set or unset them.
BLAS_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                 "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
ENV_AT_START = {name: os.environ.get(name) for name in BLAS_ENV_VARS}

import torch  # noqa: E402
import weitiao  # noqa: E402
from weitiao import _C  # noqa: E402
from weitiao.machine import cpu_model  # noqa: E402


def set_threads(n: int) -> None:
    """Give weitiao (its OpenMP pool; it keeps its OpenBLAS single-threaded) and torch
    (ATen, MKL, oneDNN) ``n`` threads each. They never run at the same time."""
    weitiao.set_num_threads(n)
    torch.set_num_threads(n)
    if weitiao.get_num_threads() != n or torch.get_num_threads() != n:
        raise RuntimeError(f"asked for {n} threads, got weitiao {weitiao.get_num_threads()}, "
                           f"torch {torch.get_num_threads()}")


# ---------------------------------------------------------------- timing

@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median over repetitions, and the fastest and slowest one."""

    median: float
    low: float
    high: float

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how far to trust the median."""
        return (self.high - self.low) / self.median


def time_interleaved(fns: Mapping[str, Callable[[], object]], reps: int = 5, warmup: int = 2,
                     min_rep_s: float = 0.1, rotate: bool = False) -> dict[str, Timing]:
    """Seconds per call of each function in ``fns``.

    Each function is first called ``warmup`` times (page faults, BLAS buffers, oneDNN
    primitive caches), then the repetitions run interleaved -- every function once per
    repetition, in the order given -- so a slow drift of the machine (frequency, a noisy
    neighbour) hits all of them alike. A repetition calls a function ``number`` times in a
    row, ``number`` chosen so that a repetition lasts at least ``min_rep_s``; a repetition's
    sample is its time / number, and the result is the median over repetitions. With
    ``rotate`` each repetition starts one function later in the order (a, b, c; b, c, a;
    ...), so no function always runs right after the same neighbour (benchmarks/ab.py: two
    copies of one build differed by up to 14% in fixed order).

    >>> t = time_interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, reps=3)
    >>> sorted(t)
    ['a', 'b']
    """
    if reps < 1 or warmup < 0:
        raise ValueError(f"expected reps >= 1 and warmup >= 0, got reps={reps}, warmup={warmup}")
    number = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-9)
        number[name] = max(1, math.ceil(min_rep_s / once))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for rep in range(reps):
        for name in order[rep % len(order):] + order[:rep % len(order)] if rotate else order:
            fn, k = fns[name], number[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: Timing(statistics.median(s), min(s), max(s)) for name, s in samples.items()}


def timeit(fn: Callable[[], object], reps: int = 5, warmup: int = 2,
           min_rep_s: float = 0.1) -> Timing:
    """Seconds per call of one function; see `time_interleaved`."""
    return time_interleaved({"fn": fn}, reps, warmup, min_rep_s)["fn"]


def sgemm_peak(threads: int, n: int = 2048, reps: int = 7, warmup: int = 2) -> float:
    """Aggregate GFLOP/s of ``threads`` concurrent n x n x n sgemms through weitiao's own
    OpenBLAS, in the fastest of ``reps`` repetitions: the ceiling of weitiao's conv kernels
    on this machine. A peak is what the machine can do, so the best repetition is the
    estimate, not the median that other load on the machine drags down.

    ``_C.linear_forward(x, w)`` is y = x @ w.T, one sgemm of 2 n^3 flops, run with the GIL
    released. weitiao keeps OpenBLAS single-threaded and spreads work over its own OpenMP
    threads, each calling its own sgemm, so the matching peak is ``threads`` such calls at
    once, one per Python thread, rather than one multi-threaded sgemm.
    """
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal((n, n), dtype=np.float32),
              rng.standard_normal((n, n), dtype=np.float32)) for _ in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        def all_at_once():
            for _ in pool.map(lambda xw: _C.linear_forward(*xw), pairs):
                pass

        seconds = timeit(all_at_once, reps, warmup).low
    return threads * 2.0 * n**3 / seconds / 1e9


# ---------------------------------------------------------------- machine info

def isa() -> str:
    """"AVX-512" or "AVX2" (what the CPU offers the OpenBLAS kernels), for section names that
    keep one table per instruction set side by side."""
    flags = cpu_flags().split()
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"


def cpu_flags(wanted: Sequence[str] = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
              ) -> str:
    """Which of the SIMD flags that decide sgemm speed /proc/cpuinfo lists."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(flag for flag in wanted if flag in have) or "none of " + \
                        " ".join(wanted)
    except OSError:
        pass
    return "unknown"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _describe_pool(entry: Mapping[str, object]) -> str:
    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    parts = [f"{k}={entry[k]}" for k in keys if entry.get(k) is not None]
    return ", ".join(parts) + f" ({entry.get('filepath')})"


def thread_pools() -> list[tuple[str, str]]:
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries, each labelled with who
    uses it: the OpenBLAS weitiao links (matched by the version in ``_C.blas_info()``),
    libraries inside the torch package, and the OpenMP runtime(s) both use."""
    from threadpoolctl import threadpool_info

    config = _C.blas_info()["config"]
    torch_dir = str(Path(torch.__file__).parent)
    entries = threadpool_info()
    openmp_runtimes = sum(entry.get("user_api") == "openmp" for entry in entries)
    pools = []
    for entry in entries:
        path = str(entry.get("filepath", ""))
        version = entry.get("version")
        if entry.get("internal_api") == "openblas" and version and str(version) in config:
            who = "weitiao BLAS"
        elif entry.get("user_api") == "openmp" and openmp_runtimes == 1:
            # Both link the soname libgomp.so.1; whichever file loads first serves both.
            who = "OpenMP, the only runtime loaded (weitiao's kernels and torch share it)"
        elif path.startswith(torch_dir):
            who = f"torch {entry.get('user_api')}"
        elif entry.get("user_api") == "openmp":
            who = "OpenMP (weitiao's kernels)"
        else:
            who = f"other {entry.get('user_api')} (not used by the timed code)"
        pools.append((who, _describe_pool(entry)))
    return pools


def torch_backends() -> str:
    """torch's own BLAS and OpenMP as torch reports them (MKL is linked statically into
    libtorch_cpu, so threadpoolctl does not see it)."""
    cfg = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", cfg)
    par = torch.__config__.parallel_info()
    backend = re.search(r"ATen parallel backend: (.+)", par)
    mkl = re.search(r"mkl_get_max_threads\(\) : (\d+)", par)
    parts = [f"BLAS_INFO={blas.group(1) if blas else '?'}",
             f"mkldnn={'on' if torch.backends.mkldnn.is_available() else 'off'}",
             f"ATen backend={backend.group(1).strip() if backend else '?'}",
             f"intra-op threads={torch.get_num_threads()}"]
    if mkl:
        parts.append(f"mkl_get_max_threads={mkl.group(1)}")
    return ", ".join(parts)


def machine_info() -> list[tuple[str, str]]:
    """(label, value) pairs describing where and how the benchmark ran; call it after
    `set_threads` so the thread counts shown are the ones used."""
    blas = _C.blas_info()
    info = [
        ("CPU", f"{cpu_model()} ({_usable_cpus()} usable of {os.cpu_count()} logical CPUs; "
                f"flags: {cpu_flags()})"),
        ("threads", f"weitiao {weitiao.get_num_threads()}, torch {torch.get_num_threads()}"),
        ("weitiao OpenBLAS", f"{blas['config']}; corename {blas['corename']}"),
        ("torch", f"{torch.__version__}: {torch_backends()}"),
    ]
    info += [(f"threadpoolctl: {who}", desc) for who, desc in thread_pools()]
    info.append(("environment", ", ".join(
        f"{name}={value if value is not None else '(unset)'}"
        for name, value in ENV_AT_START.items())))
    info.append(("software", f"Python {platform.python_version()}, NumPy {np.__version__}, "
                             f"weitiao {weitiao.__version__} (commit {source_revision()}), "
                             f"{platform.system()} "
                             f"{platform.release()}"))
    return info


def source_revision() -> str:
    """The git commit of the source tree next to this file, "+ local changes" if csrc/ or
    python/ differ from it. Read-only git calls; "unknown" outside a checkout."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args],
                              capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("diff", "--quiet", "HEAD", "--", "csrc", "python").returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + (" + local changes" if dirty else "")


def format_machine(info: Sequence[tuple[str, str]]) -> str:
    """Machine info as a markdown bullet list."""
    return "\n".join(f"- **{label}**: {value}" for label, value in info)


def command_line() -> str:
    """The command that started this process, as typed from the repository root."""
    prefix = ""
    if os.environ.get("PYTHONPATH"):
        prefix = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} "
    return prefix + shlex.join(["python", *sys.argv])


class OtherLoad:
    """CPU time other processes and the hypervisor took while a benchmark ran: a shared or
    busy machine slows whichever library happens to be running, so the header records it.

    >>> with OtherLoad() as load:
    ...     pass
    >>> load.other_cpus >= 0.0
    True
    """

    def __enter__(self) -> "OtherLoad":
        self._start = (time.perf_counter(), self._machine_busy(), self._own())
        return self

    def __exit__(self, *exc) -> None:
        t0, busy0, own0 = self._start
        wall = max(time.perf_counter() - t0, 1e-9)
        busy1, own1 = self._machine_busy(), self._own()
        self.wall = wall
        # Jiffies are coarse; clamp the rounding error at zero.
        self.other_cpus = max(0.0, (busy1[0] - busy0[0]) - (own1 - own0)) / wall
        self.steal_cpus = (busy1[1] - busy0[1]) / wall

    @staticmethod
    def _own() -> float:
        """CPU seconds of this process and of the child processes it has waited for (run.py
        times each library in a child)."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    @staticmethod
    def _machine_busy() -> tuple[float, float]:
        """(busy, steal) CPU-seconds of the whole machine since boot, from /proc/stat."""
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return 0.0, 0.0
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = user + nice + system + irq + softirq
        return busy / tick, steal / tick

    def describe(self) -> str:
        return (f"other processes kept {self.other_cpus:.2f} of {os.cpu_count()} CPUs busy on "
                f"average over the {self.wall:.0f} s run; hypervisor steal "
                f"{self.steal_cpus:.2f} CPUs")


# ---------------------------------------------------------------- markdown

def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                   align: str | None = None) -> str:
    """A GitHub markdown table, columns padded so it also reads as plain text.

    ``align`` has one character per column, ``l`` or ``r`` (default: first column left,
    the rest right).

    >>> print(markdown_table(["op", "ms"], [["fwd", "1.25"]]))
    | op  |   ms |
    | :-- | ---: |
    | fwd | 1.25 |
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    ncol = len(headers)
    if any(len(row) != ncol for row in cells):
        raise ValueError(f"expected {ncol} cells in every row")
    align = align or "l" + "r" * (ncol - 1)
    if len(align) != ncol or set(align) - {"l", "r"}:
        raise ValueError(f"expected align of {ncol} characters from 'lr', got {align!r}")
    width = [max(3, *(len(row[i]) for row in cells)) for i in range(ncol)]

    def line(row):
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                 for c, w, a in zip(row, width, align)) + " |"

    rule = "| " + " | ".join(":" + "-" * (w - 1) if a == "l" else "-" * (w - 1) + ":"
                             for w, a in zip(width, align)) + " |"
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def replace_section(path: str | Path, name: str, body: str, title: str = "# Performance") -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in the markdown
    file at ``path``, leaving the rest of the file as it was. A file without the markers gets
    the section appended; a missing file is created with ``title`` on top."""
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n"
    i, j = text.find(start), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + section + text[j + len(end):]
    elif i >= 0 or j >= 0:
        raise ValueError(f"{path}: found only one of {start} and {end}, or them out of order")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def publish(parts: Sequence[str], write: str | Path | None, section: str) -> str:
    """Join a report's ``parts`` into one markdown section, print it, and put it into the
    file ``write`` (when given) between that section's markers; returns the text."""
    body = "\n\n".join(parts)
    print(body)
    if write:
        replace_section(write, section, body)
    return body
