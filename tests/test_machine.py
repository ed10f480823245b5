"""weitiao.machine: what the report says about the CPU, the kernels' path and the BLAS."""
import platform

import pytest

from weitiao import machine

KNOWN_ISAS = {"x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2, FMA)", "x86-64 (SSE2)",
              "default (built without vector clones)"}


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_kernel_isa_is_one_of_the_clones():
    assert machine.kernel_isa() in KNOWN_ISAS


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the clones are x86-64 only")
def test_kernel_isa_follows_the_cpu_flags():
    # The levels' defining flags (x86-64 psABI); a CPU with AVX2 but not AVX-512 takes v3.
    flags = cpu_flags()
    v3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    isa = machine.kernel_isa()
    if isa.startswith("default"):
        pytest.skip("built without vector clones")
    expected = "x86-64-v4" if v4 else "x86-64-v3" if v3 else "x86-64 ("
    assert isa.startswith(expected)


def test_blas_core_names_a_kernel_family():
    core = machine.blas_core()
    assert isinstance(core, str) and core
