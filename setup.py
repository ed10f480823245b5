"""Build weitiao._C from csrc/*.c and csrc/py/*.c, linked to OpenBLAS.

By default the BLAS is the scipy-openblas32 wheel (headers, library and symbol prefix come
from it), so `pip install .` needs only a C compiler. Set WEITIAO_BLAS=system to link a
system OpenBLAS found by pkg-config instead (package name from WEITIAO_BLAS_PKG, default
"openblas").
"""
import glob
import os
import shlex
import subprocess

import numpy
from setuptools import Extension, setup

# An undeclared function is an error, not a warning: it links, then fails at import with
# "undefined symbol" (as PyDataMem_SetHandler did when NumPy hid it, below).
CFLAGS = ["-std=c99", "-O3", "-fopenmp", "-Wall", "-Wextra", "-fno-strict-aliasing",
          "-Werror=implicit-function-declaration"]
LDFLAGS = ["-fopenmp"]

# WEITIAO_SANITIZE=1: an AddressSanitizer + UndefinedBehaviorSanitizer build for
# scripts/sanitize.sh (see docs/reliability.md); the later -O1 overrides -O3, and -fno-wrapv
# undoes the -fwrapv of Python's own CFLAGS, which would hide signed overflow from UBSan.
if os.environ.get("WEITIAO_SANITIZE") == "1":
    SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1",
                "-fno-wrapv"]
    CFLAGS += SANITIZE
    LDFLAGS += SANITIZE


def pkg_config(package, option):
    try:
        out = subprocess.run(["pkg-config", option, package], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(
            f"WEITIAO_BLAS=system but pkg-config cannot find {package!r}: install it (Debian: "
            f"apt-get install libopenblas-dev pkg-config) or unset WEITIAO_BLAS") from e
    return shlex.split(out)


def blas_options():
    """Compiler and linker options for the chosen OpenBLAS."""
    if os.environ.get("WEITIAO_BLAS", "wheel") == "system":
        package = os.environ.get("WEITIAO_BLAS_PKG", "openblas")
        cflags = pkg_config(package, "--cflags")
        libs = pkg_config(package, "--libs")
        return {
            "include_dirs": [f[2:] for f in cflags if f.startswith("-I")],
            "extra_compile_args": [f for f in cflags if not f.startswith("-I")],
            "library_dirs": [f[2:] for f in libs if f.startswith("-L")],
            "libraries": [f[2:] for f in libs if f.startswith("-l")],
        }
    import scipy_openblas32 as ob

    return {
        "include_dirs": [ob.get_include_dir()],
        "extra_compile_args": ["-DBLAS_SYMBOL_PREFIX=scipy_"],
        "library_dirs": [ob.get_lib_dir()],
        "libraries": [ob.get_library()],
        # Installed side by side in site-packages; weitiao/__init__.py also imports
        # scipy_openblas32 first, which loads the library for in-place builds.
        "runtime_library_dirs": ["$ORIGIN/../scipy_openblas32/lib"],
    }


def extension():
    blas = blas_options()
    return Extension(
        "weitiao._C",
        # the kernels, then the Python boundary (the only C that includes Python.h)
        sources=sorted(glob.glob("csrc/*.c")) + sorted(glob.glob("csrc/py/*.c")),
        include_dirs=["csrc", numpy.get_include(), *blas["include_dirs"]],
        # NumPy's headers offer only the C API of NPY_TARGET_VERSION, by default an older one
        # that depends on the NumPy built against (NumPy 2.2, the last for Python 3.10, hides
        # PyDataMem_SetHandler); 2.0 matches the numpy>=2 dependency.
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_2_0_API_VERSION")],
        extra_compile_args=CFLAGS + blas["extra_compile_args"],
        extra_link_args=LDFLAGS,
        library_dirs=blas["library_dirs"],
        libraries=blas["libraries"],
        runtime_library_dirs=blas.get("runtime_library_dirs", []),
    )


setup(ext_modules=[extension()])
