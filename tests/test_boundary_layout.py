"""The Python/C boundary stays in its place: only csrc/module.c and csrc/py/ include
Python.h or NumPy's headers, so the kernels in csrc/*.c and csrc/*.h remain plain C99 that
a reader (or another binding) can take without Python."""
import re
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"
# Python's and NumPy's headers, and the boundary's own (which pull both in).
PYTHON_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](Python\.h|numpy/|py/)', re.M)


@pytest.mark.skipif(not CSRC.is_dir(), reason="needs the source tree")
def test_only_the_boundary_includes_python():
    kernels = [p for p in sorted(CSRC.glob("*.[ch]")) if p.name != "module.c"]
    assert kernels, f"no kernel sources under {CSRC}"
    offenders = [p.name for p in kernels if PYTHON_INCLUDE.search(p.read_text())]
    assert not offenders, f"kernels that include Python, NumPy or csrc/py headers: {offenders}"
    assert sorted(CSRC.glob("py/*.c")), "the boundary files are missing from csrc/py/"
